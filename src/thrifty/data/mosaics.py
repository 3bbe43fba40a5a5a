"""``mosaic``: multi-label scenes composed from real digits, for soft contrastive learning
(SoftCon, Wang et al. 2024) and multi-label probes on a laptop.

A mosaic is a 2x2 grid (16x16) of scikit-learn's 8x8 handwritten digits. Each mosaic holds 2 to
4 distinct digit classes (every chosen class fills at least one cell, the rest repeat them,
cells shuffled), so scenes share some of their labels and not others, as land-cover scenes do.
Its multi-hot ``targets`` (10,) say which classes are present; ``labels`` is the top-left
digit's class, for single-label probes.

Honest splits: the 1,797 digits are split first (stratified by class, ``seed``), and each
split's mosaics are composed only from that split's digits, so no test mosaic shows a digit
image that a train or valid mosaic contains. Each split gets as many mosaics as it has digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

GRID = 2
CLASSES_PER_MOSAIC = (2, 3, 4)


@dataclass
class MosaicSet:
    images: np.ndarray
    """(N, 1, 16, 16) uint8: every split's mosaics, concatenated."""
    labels: np.ndarray
    """(N,) int64: the class of each mosaic's top-left digit."""
    targets: np.ndarray
    """(N, 10) uint8: multi-hot, the classes present in each mosaic."""
    classes: list[str]
    splits: dict[str, np.ndarray]
    """Indices of each split's mosaics into the arrays above."""
    source: dict[str, Any]
    """The ledger's source row: the digits' path and sha256."""


def compose(
    images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` mosaics of the digits ``images`` (n, C, 8, 8) with classes ``labels``:
    (count, C, 16, 16) images, the top-left cell's class, (count, 10) multi-hot targets."""
    classes = np.unique(labels)
    cells, side = GRID * GRID, images.shape[-1]
    k = np.minimum(rng.choice(CLASSES_PER_MOSAIC, size=count), len(classes))
    chosen = rng.permuted(np.tile(classes, (count, 1)), axis=1)[:, :cells]  # k first are used
    repeat = (rng.random((count, cells)) * k[:, None]).astype(np.int64)  # a used class per cell
    first_k = np.arange(cells)[None, :] < k[:, None]
    fill = np.where(first_k, chosen, np.take_along_axis(chosen, repeat, 1))
    fill = rng.permuted(fill, axis=1)  # (count, cells): each cell's class
    order = np.argsort(labels, kind="stable")  # a uniform digit of each cell's class
    first_of, size_of = np.searchsorted(labels[order], classes), np.bincount(labels)[classes]
    slot = np.searchsorted(classes, fill)
    pick = order[first_of[slot] + (rng.random(fill.shape) * size_of[slot]).astype(np.int64)]
    tiles = images[pick]  # (count, cells, C, side, side)
    grid = tiles.reshape(count, GRID, GRID, images.shape[1], side, side)
    out = grid.transpose(0, 3, 1, 4, 2, 5).reshape(count, images.shape[1], GRID * side, -1)
    targets = np.zeros((count, 10), dtype=np.uint8)
    targets[np.arange(count)[:, None], np.where(first_k, chosen, chosen[:, :1])] = 1
    return np.ascontiguousarray(out), fill[:, 0].astype(np.int64), targets


def mosaic_source(valid_fraction: float, test_fraction: float, seed: int) -> MosaicSet:
    """The mosaics of every split, each composed from its own split of the digits."""
    from thrifty.data.images import SPLITS, load_digits_source, stratified_splits

    digits, digit_labels, classes, row = load_digits_source()
    digit_splits = stratified_splits(digit_labels, valid_fraction, test_fraction, seed)
    rng = np.random.default_rng([seed, 1])  # its own stream: the digit split stays as it was
    parts, splits, start = [], {}, 0
    for split in SPLITS:
        pick = digit_splits[split]
        parts.append(compose(digits[pick], digit_labels[pick], len(pick), rng))
        splits[split] = np.arange(start, start + len(pick))
        start += len(pick)
    images, labels, targets = (np.concatenate(p) for p in zip(*parts, strict=True))
    row = {**row, "path": "sklearn.datasets.load_digits (2x2 mosaics)"}
    return MosaicSet(images, labels, targets, classes, splits, row)
