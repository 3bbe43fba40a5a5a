"""Spending a word budget on documents: how many words of each document to keep.

Each function takes per-source arrays of document word counts and returns, per source, the words
kept from each document (0 = skipped; less than the document = its first words). The totals are
exact: a selection of N words holds N words, the last document of a source cut to fit.
"""

from __future__ import annotations

import numpy as np

from thrifty.errors import UserError


def select_prefix(doc_words: list[np.ndarray], budget: int) -> list[np.ndarray]:
    """Documents in source order until ``budget`` words; the last one is cut to fit."""
    _check_budget(doc_words, budget)
    take, left = [], budget
    for words in doc_words:
        take.append(_fill(words, np.arange(len(words)), left))
        left -= int(take[-1].sum())
    return take


def select_sample(doc_words: list[np.ndarray], budget: int, seed: int) -> list[np.ndarray]:
    """Each source gets its proportional share of ``budget``, filled with whole documents in
    a seeded random order; the last document of each source is cut to fit the share exactly."""
    _check_budget(doc_words, budget)
    shares = proportional_shares(budget, [int(w.sum()) for w in doc_words])
    take = []
    for index, (words, share) in enumerate(zip(doc_words, shares, strict=True)):
        # one random stream per (seed, source): a source's choice doesn't hinge on the others
        order = np.random.default_rng([seed, 0, index]).permutation(len(words))
        take.append(_fill(words, order, share))
    return take


def proportional_shares(budget: int, totals: list[int]) -> list[int]:
    """floor(budget * w / W) per source, the remainder going to the largest fractions."""
    whole = sum(totals)
    shares = [budget * w // whole for w in totals]
    fractions = [budget * w % whole for w in totals]
    # ties go to the earlier source; a nonzero fraction means the share is below the total
    for i in sorted(range(len(totals)), key=lambda i: -fractions[i])[: budget - sum(shares)]:
        shares[i] += 1
    return shares


def split_valid(take: list[np.ndarray], fraction: float, seed: int) -> list[np.ndarray]:
    """Seeded choice of whole selected documents for validation, about ``fraction`` of the
    words; at least one document when two or more are selected and ``fraction`` > 0."""
    flat = np.concatenate(take) if take else np.zeros(0, dtype=np.int64)
    valid = np.zeros(len(flat), dtype=bool)
    chosen = np.flatnonzero(flat)
    if fraction > 0 and len(chosen) >= 2:
        order = chosen[np.random.default_rng([seed, 1]).permutation(len(chosen))]
        target = fraction * int(flat.sum())
        n = int(np.searchsorted(np.cumsum(flat[order]), target)) + 1  # first prefix to reach it
        valid[order[: min(n, len(chosen) - 1)]] = True  # keep at least one training document
    return np.split(valid, np.cumsum([len(t) for t in take])[:-1]) if take else []


def _fill(words: np.ndarray, order: np.ndarray, quota: int) -> np.ndarray:
    """Take documents in ``order`` until ``quota`` words; cut the last one to fit."""
    take = np.zeros(len(words), dtype=np.int64)
    if quota <= 0 or len(words) == 0:
        return take
    cumulative = np.cumsum(words[order])
    k = int(np.searchsorted(cumulative, quota))  # first document that reaches the quota
    take[order[:k]] = words[order[:k]]
    if k < len(order):
        take[order[k]] = quota - (int(cumulative[k - 1]) if k else 0)
    return take


def _check_budget(doc_words: list[np.ndarray], budget: int) -> None:
    total = sum(int(w.sum()) for w in doc_words)
    if budget > total:
        raise UserError(
            f"budget of {budget:,} words is larger than the corpus ({total:,} words in "
            f"{len(doc_words)} file(s)); lower --budget-words or add sources"
        )
