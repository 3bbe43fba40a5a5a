"""BLiMP-family minimal pairs: an item is correct iff score(good) > score(bad).

Warstadt et al. 2020 (BLiMP, 67 paradigms); BabyLM's filtered and fast copies and the BLiMP
supplement use the same fields. Scoring follows `papers/babylm_challenge.md` §4: sentence
scores are summed log-probs, ties count as *incorrect* (so a constant scorer gets 0%, never
100%), and accuracy is averaged over paradigms (``macro``), not over items. A phenomenon's
accuracy (``linguistics_term``) is the mean over its paradigms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from thrifty.errors import UserError
from thrifty.eval.records import data_files, read_records, stem, subsample, write_jsonl
from thrifty.eval.scoring import score_sentences

REQUIRED = ("sentence_good", "sentence_bad")


@dataclass(frozen=True)
class Pair:
    paradigm: str  # UID (the file name when the record has none, as in BLiMP supplement)
    phenomenon: str  # linguistics_term (the paradigm when absent)
    good: str
    bad: str
    source: str  # "file:line", for per-item output and error messages


def read_file(path: Path) -> list[Pair]:
    pairs = []
    for n, rec in read_records(path, {key: str for key in REQUIRED}):
        uid = str(rec.get("UID") or stem(path))
        term = str(rec.get("linguistics_term") or uid)
        pairs.append(Pair(uid, term, rec["sentence_good"], rec["sentence_bad"], f"{path}:{n}"))
    return pairs


def read_pairs(
    folder: str | Path,
    *,
    paradigms: Sequence[str] | None = None,
    max_pairs_per_paradigm: int | None = None,
    seed: int = 0,
) -> list[Pair]:
    """All pairs of a folder (or one file), optionally filtered and subsampled per paradigm.

    ``paradigms`` name files without extension (BLiMP's UIDs). The subsample of a paradigm
    depends only on (seed, paradigm), so it does not change when other paradigms are filtered.
    """
    groups: dict[str, list[Pair]] = {}
    for path in data_files(Path(folder), paradigms):
        for pair in read_file(path):
            groups.setdefault(pair.paradigm, []).append(pair)
    if not groups:
        raise UserError(f"{folder} holds no minimal pairs")
    groups = subsample(groups, max_pairs_per_paradigm, seed)
    return [pair for uid in sorted(groups) for pair in groups[uid]]


def evaluate_pairs(
    pairs: Sequence[Pair],
    score: Callable[[list[str]], Sequence[float]],
    *,
    items_path: str | Path | None = None,
) -> dict:
    """Accuracy per paradigm, per phenomenon and macro, with one scoring call for all sentences.

    Sentences that occur several times are scored once, which also gives identical sentences
    identical scores (a pair whose good and bad sentences coincide is a tie: incorrect).
    """
    start = time.perf_counter()
    unique = list(dict.fromkeys(s for p in pairs for s in (p.good, p.bad)))
    values = list(score(unique))
    if len(values) != len(unique):
        raise ValueError(f"scorer returned {len(values)} scores for {len(unique)} sentences")
    by_text = dict(zip(unique, values, strict=True))
    seconds = time.perf_counter() - start

    correct: dict[str, list[bool]] = {}
    phenomenon: dict[str, str] = {}
    items = []
    for p in pairs:
        good, bad = by_text[p.good], by_text[p.bad]
        ok = bool(good > bad)  # ties are wrong (BabyLM 2025 artefact, Păpușoi & Nisioi)
        correct.setdefault(p.paradigm, []).append(ok)
        phenomenon[p.paradigm] = p.phenomenon
        items.append(
            {
                "paradigm": p.paradigm,
                "source": p.source,
                "sentence_good": p.good,
                "sentence_bad": p.bad,
                "score_good": good,
                "score_bad": bad,
                "correct": ok,
            }
        )
    paradigms = {
        uid: {"accuracy": sum(v) / len(v), "n": len(v), "phenomenon": phenomenon[uid]}
        for uid, v in sorted(correct.items())
    }
    by_term: dict[str, list[float]] = {}
    for res in paradigms.values():
        by_term.setdefault(res["phenomenon"], []).append(res["accuracy"])
    if items_path is not None:
        write_jsonl(items_path, items)
    return {
        "macro": sum(r["accuracy"] for r in paradigms.values()) / len(paradigms),
        "n_pairs": len(pairs),
        "n_paradigms": len(paradigms),
        "phenomena": {t: sum(a) / len(a) for t, a in sorted(by_term.items())},
        "paradigms": paradigms,
        "n_sentences": len(unique),
        "seconds": seconds,
        "sentences_per_s": len(unique) / seconds if seconds > 0 else float("inf"),
    }


def evaluate_minimal_pairs(
    model,
    tokenizer,
    folder: str | Path,
    *,
    backend: str,
    variant: str = "original",
    paradigms: Sequence[str] | None = None,
    max_pairs_per_paradigm: int | None = None,
    seed: int = 0,
    items_path: str | Path | None = None,
    **score_kwargs,
) -> dict:
    """Read a BLiMP-style folder and score it with a thrifty model; see :func:`evaluate_pairs`.

    ``score_kwargs`` go to :func:`thrifty.eval.scoring.score_sentences` (max_batch_tokens,
    device).
    """
    pairs = read_pairs(
        folder, paradigms=paradigms, max_pairs_per_paradigm=max_pairs_per_paradigm, seed=seed
    )

    def score(sentences: list[str]) -> list[float]:
        return score_sentences(
            model, tokenizer, sentences, backend, variant=variant, **score_kwargs
        )

    result = evaluate_pairs(pairs, score, items_path=items_path)
    head = {
        "data": str(folder),
        "backend": backend,
        "variant": variant,
        "seed": seed,
        "max_pairs_per_paradigm": max_pairs_per_paradigm,
    }
    return {**head, **result}


def format_table(result: dict) -> str:
    """Plain-text table: phenomena with their paradigms, then the macro average."""
    lines = [f"{'paradigm':<58} {'n':>5} {'acc':>6}"]
    by_term: dict[str, list[str]] = {}
    for uid, res in result["paradigms"].items():
        by_term.setdefault(res["phenomenon"], []).append(uid)
    for term, uids in by_term.items():
        lines.append(f"{term:<58} {'':>5} {100 * result['phenomena'][term]:6.1f}")
        for uid in uids:
            res = result["paradigms"][uid]
            lines.append(f"  {uid:<56} {res['n']:>5} {100 * res['accuracy']:6.1f}")
    tag = result.get("backend", "")
    if result.get("variant", "original") != "original":
        tag += f"/{result['variant']}"
    lines.append(
        f"{'macro (mean over paradigms)':<58} {result['n_pairs']:>5} {100 * result['macro']:6.1f}"
    )
    lines.append(
        f"{result['n_paradigms']} paradigms, {result['n_sentences']} sentences, {tag} scoring, "
        f"{result['seconds']:.1f}s ({result['sentences_per_s']:.0f} sentences/s)"
    )
    return "\n".join(lines)
