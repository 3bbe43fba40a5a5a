"""Wug test of adjective nominalization (after Hofmann et al.'s derivational-morphology wug
tests; the BabyLM 2025 evaluation data).

Each record holds two sentences separated by a tab, the same prompt ending in two nominal forms
of a nonce adjective ("... actignable. actignability" / "... actignableness"), and ``ratio``, the
share of human participants who preferred the first form. The metric is the one the 2025
pipeline reports (``rank_and_evaluate_wug``): Spearman's rho between the model's preference for
the first sentence, softmax over the two whole-sentence log-probs, and the human ratio.

The softmax of two scores is sigmoid(s1 - s2), a monotone function of the log-odds s1 - s2, and
Spearman's rho only sees ranks; so rho is computed on s1 - s2 in float64, which gives the
pipeline's number without the ties that a saturated float32 softmax would create. Ranks of ties
are averaged (as ``scipy.stats.spearmanr`` does). The per-item output carries the probability.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from thrifty.errors import UserError
from thrifty.eval.records import data_files, read_records, stem, subsample, write_jsonl
from thrifty.eval.tasks import EVAL_TASKS, Scorer, Task


def average_ranks(values) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True,
                                   return_counts=True)  # fmt: skip
    last = np.cumsum(counts)
    return (last - (counts - 1) / 2.0)[inverse]


def spearman(x, y) -> float:
    """Spearman's rank correlation; NaN when either side is constant (undefined)."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} vs {len(y)} values")
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def read_items(path: Path) -> list[dict]:
    items = []
    for n, rec in read_records(path, {"sentences": str, "ratio": (int, float)}):
        pair = rec["sentences"].split("\t")
        if len(pair) != 2:
            raise UserError(f"{path}:{n}: 'sentences' must hold two tab-separated sentences")
        if not 0.0 <= rec["ratio"] <= 1.0:
            raise UserError(f"{path}:{n}: 'ratio' must be in [0, 1], got {rec['ratio']}")
        items.append({"file": stem(path), "sentences": pair, "ratio": float(rec["ratio"]),
                      "source": f"{path}:{n}"})  # fmt: skip
    return items


@EVAL_TASKS.register("wug")
class Wug(Task):
    """Model vs human preference between two nominalizations of nonce adjectives."""

    default_subdir = "babylm_eval/full_eval/wug_adj_nominalization"
    metric = "spearman"

    def evaluate(self, scorer: Scorer, folder: Path, *, items_path: Path | None = None) -> dict:
        groups: dict[str, list[dict]] = {}
        for path in data_files(Path(folder), self.cfg.subtasks):
            groups.setdefault(stem(path), []).extend(read_items(path))
        groups = subsample(groups, self.cfg.max_items_per_subtask, self.cfg.seed)
        items = [item for name in sorted(groups) for item in groups[name]]
        if not items:
            raise UserError(f"{folder} holds no wug items")
        start = time.perf_counter()
        unique = list(dict.fromkeys(s for item in items for s in item["sentences"]))
        by_text = dict(zip(unique, scorer.sentences(unique), strict=True))
        seconds = time.perf_counter() - start

        subtasks, rows = {}, []
        for name, group in sorted(groups.items()):
            log_odds = [by_text[i["sentences"][0]] - by_text[i["sentences"][1]] for i in group]
            subtasks[name] = {"score": spearman(log_odds, [i["ratio"] for i in group]),
                              "n": len(group)}  # fmt: skip
            for item, d in zip(group, log_odds, strict=True):
                prob = 1.0 / (1.0 + math.exp(-d)) if d > -700 else 0.0
                rows.append({**item, "scores": [by_text[s] for s in item["sentences"]],
                             "model_prob": prob})  # fmt: skip
        if items_path is not None:
            write_jsonl(items_path, rows)
        score = sum(r["score"] for r in subtasks.values()) / len(subtasks)
        return {
            **self.head(scorer, folder),
            "score": score,
            "macro": score,
            "subtasks": subtasks,
            "n_items": len(items),
            "n_sentences": len(unique),
            "seconds": seconds,
            "sentences_per_s": len(unique) / seconds if seconds > 0 else float("inf"),
        }
