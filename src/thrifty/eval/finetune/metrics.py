"""Classification metrics as BabyLM reports them, plus ROC-AUC, in numpy (no sklearn).

Conventions match scikit-learn's defaults: F1 is for the positive class 1 and is 0 when there
are no true or predicted positives; MCC (Gorodkin's multi-class form) is 0 when a marginal is
constant. ROC-AUC uses the rank-sum (Mann-Whitney) formula with average ranks, so a tie
between a positive and a negative counts one half.
"""

from __future__ import annotations

import numpy as np


def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    return float(np.mean(np.asarray(labels) == np.asarray(preds)))


def f1(labels: np.ndarray, preds: np.ndarray) -> float:
    labels, preds = np.asarray(labels) == 1, np.asarray(preds) == 1
    tp = int(np.sum(labels & preds))
    denominator = int(labels.sum() + preds.sum())
    return 2 * tp / denominator if denominator else 0.0


def mcc(labels: np.ndarray, preds: np.ndarray) -> float:
    labels, preds = np.asarray(labels), np.asarray(preds)
    classes = np.union1d(labels, preds)
    t = np.array([np.sum(labels == c) for c in classes], dtype=np.float64)  # true per class
    p = np.array([np.sum(preds == c) for c in classes], dtype=np.float64)  # predicted per class
    correct, n = float(np.sum(labels == preds)), float(len(labels))
    denominator = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return float((correct * n - p @ t) / denominator) if denominator else 0.0


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``; tied values share the mean of their ranks."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])  # first index of each tie group
    ends = np.r_[starts[1:], len(xs)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative) + ½ P(tie)."""
    labels = np.asarray(labels) == 1
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        raise ValueError("ROC-AUC needs both classes among the labels")
    rank_sum = average_ranks(scores)[labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


METRICS = {"accuracy": accuracy, "f1": f1, "mcc": mcc}


def compute(names: tuple[str, ...] | list[str], labels: np.ndarray, logits: np.ndarray) -> dict:
    """Metrics by name from (N, K) logits; ``auc`` scores binary tasks by the logit margin."""
    preds = np.asarray(logits).argmax(-1)
    out = {}
    for name in names:
        if name == "auc":
            out[name] = roc_auc(labels, logits[:, 1] - logits[:, 0])
        else:
            out[name] = METRICS[name](labels, preds)
    return out
