"""CoLoR-Filter: choose the pool documents whose loss drops most once a model has seen the target
(Brandfonbrener et al. 2024, arXiv 2406.10670; `papers/color_filter.md`).

Two auxiliary causal LMs: a *prior* trained on a random pool sample, and a *conditional* model,
the prior fine-tuned on the target text. A candidate x scores

    s(x) = L(x; prior) − L(x; conditional),   L = mean per-token NLL (nats),

and the top-scoring candidates are kept. The selection ratio τ follows the card: to keep n words,
score τ·n candidate words (a seeded, per-source proportional sample of the pool) and keep the
best 1/τ of them. Candidates are the pool's documents, which ``max_doc_words`` (``thrifty select
--chunk-words``) cuts into chunks of at most that many words.

This module holds the parts that need no training: sampling candidates, scoring them with two
given models, the top-n rule, the domain composition and the ledger. ``thrifty select``
(``thrifty.cli.select``) trains the two models and writes the prepared dataset.

The ledger records what every auxiliary model read — the prior: its training sample plus the τ·n
scored candidates; the conditional model: the target text plus the same candidates — and, in
``overlap_words``, what those entries count twice (the selection and the prior's sample are
candidates; the candidates are read by both models). Charged distinct words are therefore
τ·n candidates + target words (+ the words of a prior taken from another run, + a tokenizer
trained on other text). The tokenizer trained on the prior's sample is among the candidates, and
the prior's entry lists that sample's sha256, so it is not charged twice. The ledger's budget is
the user's total (``thrifty select --budget-words``), so ``thrifty audit`` can fail a selection.
Scoring is reading, not training: the scorers add words to the charge but no exposure (passes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.data.budget import Ledger, select_prefix, select_sample
from thrifty.data.corpus import SourceScan, truncate_words
from thrifty.data.tokenizer import BOS_ID
from thrifty.errors import UserError

METHODS = ("color", "conditional")
"""color: top L_prior − L_cond (the paper); conditional: lowest L_cond (the card's ablation)."""
SCORE_BLOCK = 4096  # candidate documents tokenized and scored at a time


def sample_candidates(scans: list[SourceScan], words: int, seed: int) -> list[np.ndarray]:
    """Words taken from each document as candidates: ``words`` in all, each source its
    proportional share, whole documents in a seeded order (``budget.select_sample``)."""
    return select_sample([s.doc_words for s in scans], words, seed)


def candidate_texts(
    scans: list[SourceScan], take: list[np.ndarray], max_doc_words: int, errors: str = "strict"
) -> Iterator[str]:
    """The text of every candidate (documents with take > 0), in source and document order, cut
    to its first ``take`` words."""
    for scan, words in zip(scans, take, strict=True):
        chosen = np.flatnonzero(words)
        if len(chosen) == 0:
            continue
        last = int(chosen[-1])
        for i, doc in enumerate(scan.source.documents(max_doc_words, errors, warn=False)):
            n = int(words[i])
            if n:
                yield doc.text if n == doc.words else truncate_words(doc.text, n)
            if i == last:
                break


def mean_nll(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    device: str | torch.device | None = None,
    max_batch_tokens: int | None = None,
) -> np.ndarray:
    """Mean per-token NLL (nats) of each text under a causal ``model``, ``<s>`` prepended:
    −(1/|x|) Σ_t log p(x_t | <s> x_<t). A text longer than the model's ``max_seq_len`` is
    scored on its first tokens. Batched by length (``eval.scoring.score_packed``)."""
    from thrifty.eval.scoring import Packed, score_packed

    if not texts:
        return np.zeros(0)
    limit = model.cfg.max_seq_len - 1
    ids = [e.ids[:limit] for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
    lengths = np.array([1 + len(x) for x in ids], dtype=np.int64)
    flat = np.fromiter(
        (t for x in ids for t in (BOS_ID, *x)), dtype=np.int64, count=int(lengths.sum())
    )
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    packed = Packed(flat, starts, lengths, np.ones(len(ids), dtype=np.int64))
    logp = score_packed(model, packed, "causal", max_batch_tokens=max_batch_tokens, device=device)
    return -logp / np.maximum(lengths - 1, 1)


def score_candidates(
    prior: torch.nn.Module,
    conditional: torch.nn.Module,
    tokenizer: Any,
    texts: Iterator[str],
    *,
    device: str | torch.device | None = None,
    progress: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(prior NLL, conditional NLL) of every text, in order; ``progress(n)`` after each block."""
    prior_nll, cond_nll, block = [], [], []

    def flush() -> None:
        prior_nll.append(mean_nll(prior, tokenizer, block, device=device))
        cond_nll.append(mean_nll(conditional, tokenizer, block, device=device))
        if progress is not None:
            progress(len(block))
        block.clear()

    for text in texts:
        block.append(text)
        if len(block) == SCORE_BLOCK:
            flush()
    if block:
        flush()
    if not prior_nll:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(prior_nll), np.concatenate(cond_nll)


def selection_scores(prior_nll: np.ndarray, cond_nll: np.ndarray, method: str) -> np.ndarray:
    """Higher is better: L_prior − L_cond (``color``) or −L_cond (``conditional``)."""
    if method == "color":
        return prior_nll - cond_nll
    if method == "conditional":
        return -cond_nll
    raise UserError(f"unknown selection method {method!r}; choose from {', '.join(METHODS)}")


def top_words(words: np.ndarray, scores: np.ndarray, budget: int) -> np.ndarray:
    """Words kept per candidate: best scores first (ties: earlier candidate first) until
    ``budget`` words, the last candidate cut to fit exactly."""
    order = np.argsort(-scores, kind="stable")
    kept = np.zeros_like(words)
    kept[order] = select_prefix([words[order]], budget)[0]
    return kept


def unflatten(flat: np.ndarray, take: list[np.ndarray]) -> list[np.ndarray]:
    """Per-candidate values (flat, candidate order) back to per-source, per-document arrays."""
    out, pos = [], 0
    for words in take:
        chosen = np.flatnonzero(words)
        full = np.zeros_like(words)
        full[chosen] = flat[pos : pos + len(chosen)]
        out.append(full)
        pos += len(chosen)
    return out


def composition(
    scans: list[SourceScan], candidates: list[np.ndarray], selected: list[np.ndarray]
) -> list[dict[str, Any]]:
    """Per source file: candidate and selected words and shares (the selection's domain mix)."""
    cand_total = max(sum(int(c.sum()) for c in candidates), 1)
    sel_total = max(sum(int(s.sum()) for s in selected), 1)
    rows = []
    for scan, cand, sel in zip(scans, candidates, selected, strict=True):
        c, s = int(cand.sum()), int(sel.sum())
        rows.append(
            {
                "path": scan.source.name,
                "candidate_words": c,
                "selected_words": s,
                "candidate_share": c / cand_total,
                "selected_share": s / sel_total,
                "kept": s / c if c else 0.0,
            }
        )
    return rows


def selection_ledger(
    *,
    method: str,
    tau: float,
    seed: int,
    candidate_words: int,
    selected_words: int,
    prior_words: int,
    prior_from_pool: bool,
    target_words: int,
    target_sources: list[dict[str, Any]],
    budget_words: int,
    prior_texts: list[str] = (),
) -> Ledger:
    """The ledger of a selected dataset before it is written (sources and tokenizer follow).

    ``prior_words``: what the prior was trained on; ``prior_from_pool``: that sample was drawn
    from the candidates (so it adds no distinct words); ``prior_texts``: sha256 of the texts
    its charge holds (its training split), so a tokenizer trained on them is not charged again.
    ``budget_words``: what the whole pipeline may read (``thrifty select --budget-words``).
    """
    ledger = Ledger(budget_words=budget_words, selection="color_filter", seed=seed)
    ledger.charge_aux_model("color_filter prior", prior_words + candidate_words, list(prior_texts))
    ledger.charge_aux_model("color_filter conditional", target_words + candidate_words)
    ledger.overlap_words = (
        selected_words + candidate_words + (prior_words if prior_from_pool else 0)
    )
    ledger.details = {
        "method": method,
        "tau": tau,
        "candidate pool words (scored by both models)": candidate_words,
        "prior trained on": f"{prior_words:,} words" + (" of the candidates" * prior_from_pool),
        "target words (conditional model)": target_words,
        "target": ", ".join(f"{t['path']} (sha256 {t['sha256'][:12]})" for t in target_sources),
        "selected words": selected_words,
    }
    return ledger


def write_scores(
    path: Path,
    scans: list[SourceScan],
    candidates: list[np.ndarray],
    prior_nll: np.ndarray,
    cond_nll: np.ndarray,
    scores: np.ndarray,
    kept: np.ndarray,
) -> None:
    """One TSV row per candidate: source, document, words, both NLLs, score, words kept."""
    from thrifty.atomic import write_text_atomic

    lines = ["source\tdocument\twords\tprior_nll\tcond_nll\tscore\tselected_words"]
    k = 0
    for scan, words in zip(scans, candidates, strict=True):
        for doc in np.flatnonzero(words):
            lines.append(
                f"{scan.source.name}\t{doc}\t{words[doc]}\t{prior_nll[k]:.5f}\t"
                f"{cond_nll[k]:.5f}\t{scores[k]:.5f}\t{kept[k]}"
            )
            k += 1
    write_text_atomic(Path(path), "\n".join(lines) + "\n")
