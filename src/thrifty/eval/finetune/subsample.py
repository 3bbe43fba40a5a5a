"""Seeded, class-stratified subsamples whose prefixes are subsamples too.

One ordering per seed: each class is shuffled, then classes are interleaved so that after every
k examples each class has its share of k rounded up or down (the class furthest below its share
goes next). The first N of the ordering is the N-label sample, so the samples for N < N' are
nested and every size keeps the class balance of the pool.
"""

from __future__ import annotations

import numpy as np


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of ``range(len(labels))`` whose every prefix is class-stratified."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    queues = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    share = counts / counts.sum()
    taken = np.zeros(len(classes), dtype=np.int64)
    order = np.empty(len(labels), dtype=np.int64)
    for k in range(len(labels)):
        deficit = (k + 1) * share - taken
        deficit[taken == counts] = -np.inf
        c = int(np.argmax(deficit))  # ties go to the first class, deterministically
        order[k] = queues[c][taken[c]]
        taken[c] += 1
    return order


def stratified_subsample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a class-stratified sample of ``n`` (all when n >= len(labels)), sorted."""
    return np.sort(stratified_order(labels, seed)[:n])
