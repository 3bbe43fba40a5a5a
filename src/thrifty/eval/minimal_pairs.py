"""BLiMP-family minimal pairs: an item is correct iff score(good) > score(bad).

Warstadt et al. 2020 (BLiMP, 67 paradigms); BabyLM's filtered and fast copies and the BLiMP
supplement use the same fields. Scoring follows `papers/babylm_challenge.md` §4: sentence
scores are summed log-probs, ties count as *incorrect* (so a constant scorer gets 0%, never
100%), and accuracy is averaged over paradigms (``macro``), not over items. A phenomenon's
accuracy (``linguistics_term``) is the mean over its paradigms.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError
from thrifty.eval.scoring import score_sentences
from thrifty.registry import suggest

REQUIRED = ("sentence_good", "sentence_bad")


@dataclass(frozen=True)
class Pair:
    paradigm: str  # UID (the file name when the record has none, as in BLiMP supplement)
    phenomenon: str  # linguistics_term (the paradigm when absent)
    good: str
    bad: str
    source: str  # "file:line", for per-item output and error messages


def _open(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _files(folder: Path) -> list[Path]:
    if not folder.exists():
        raise UserError(f"minimal-pair data not found: {folder}")
    if folder.is_file():
        return [folder]
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
    if not files:
        raise UserError(f"{folder} holds no *.jsonl or *.jsonl.gz files")
    return files


def read_file(path: Path) -> list[Pair]:
    stem = path.name.removesuffix(".gz").removesuffix(".jsonl")
    pairs = []
    try:
        with _open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                if not isinstance(rec, dict):
                    raise UserError(f"{path}:{n}: expected a JSON object")
                for key in REQUIRED:
                    if not isinstance(rec.get(key), str):
                        raise UserError(f"{path}:{n}: missing or non-string field {key!r}")
                uid = str(rec.get("UID") or stem)
                term = str(rec.get("linguistics_term") or uid)
                pair = Pair(uid, term, rec["sentence_good"], rec["sentence_bad"], f"{path}:{n}")
                pairs.append(pair)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
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
    files = _files(Path(folder))
    if paradigms:
        stems = {p: p.name.removesuffix(".gz").removesuffix(".jsonl") for p in files}
        wanted = set(paradigms)
        unknown = sorted(wanted - set(stems.values()))
        if unknown:
            names = sorted(stems.values())
            raise UserError(f"paradigm {unknown[0]!r} not in {folder}{suggest(unknown[0], names)}")
        files = [p for p in files if stems[p] in wanted]
    groups: dict[str, list[Pair]] = {}
    for path in files:
        for pair in read_file(path):
            groups.setdefault(pair.paradigm, []).append(pair)
    if not groups:
        raise UserError(f"{folder} holds no minimal pairs")
    if max_pairs_per_paradigm is not None:
        if max_pairs_per_paradigm < 1:
            raise UserError(f"max_pairs_per_paradigm must be >= 1, got {max_pairs_per_paradigm}")
        for uid, items in groups.items():
            if len(items) > max_pairs_per_paradigm:
                rng = random.Random(f"{seed}:{uid}")  # str seeds hash stably across runs
                keep = rng.sample(range(len(items)), max_pairs_per_paradigm)
                groups[uid] = [items[i] for i in sorted(keep)]
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
        _write_jsonl(Path(items_path), items)
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


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


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
