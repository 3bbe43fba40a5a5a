"""EWoK, Elements of World Knowledge (Ivanova et al. 2024), in BabyLM 2025's filtered copy.

``ewok_filtered/`` holds one JSON lines file per domain (``agent-properties.jsonl``,
``social-relations.jsonl``, ...), one record per item: ``Domain``, ``Context1``, ``Context2``,
``Target1``, ``Target2``, ``ContextType`` (direct / indirect), ``ContextDiff`` and ``TargetDiff``
(what the two contexts / targets contrast), and more (``ConceptA``, ``ConceptB``) that scoring does
not need. Target1 fits Context1 and Target2 fits Context2. The data is distributed under terms
of use that forbid redistribution, so thrifty never ships or fetches it.

Scoring, ``comparison="targets"`` (the default): as ``babylm/evaluation-pipeline-2025`` does it
(``sentence_zero_shot/read_files.decode_ewok``: both candidate sentences start with Context1, the
completions are " " + Target1 and " " + Target2, label 0). The item is correct iff

    log p(" " + Target1 | Context1)  >  log p(" " + Target2 | Context1),

summed over the target's tokens only (``Scorer.continuations``; every backend). The filtered
files hold each item twice, contexts and targets swapped, so Context2 gets its turn as well.
Ties count as wrong; the pipeline's ``torch.max`` picks the first of tied scores and so counts
them right.

``comparison="contexts"``: the EWoK paper's own logprob test, which holds the target fixed so
that a target's own frequency cannot decide: correct iff log p(T1 | C1) > log p(T1 | C2) and
log p(T2 | C2) > log p(T2 | C1). Not what the BabyLM numbers use.

Aggregation as in the pipeline: accuracy per ``Domain`` (its UID; ``subtasks``), ``score`` the
mean over domains; ``context_types``, ``context_contrasts`` and ``target_contrasts`` are the
accuracies over all items of each value (the pipeline's report sections), ``item_accuracy``
the plain fraction correct.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from thrifty.errors import UserError
from thrifty.eval.records import data_files, read_records, subsample, write_jsonl
from thrifty.eval.tasks import EVAL_TASKS, Scorer, Task, TaskConfig

REQUIRED = ("Domain", "Context1", "Context2", "Target1", "Target2")
COMPARISONS = ("targets", "contexts")


@dataclass(frozen=True)
class Item:
    domain: str
    context1: str
    context2: str
    target1: str
    target2: str
    context_type: str
    context_contrast: str
    target_contrast: str
    source: str  # "file:line"


def read_items(path: Path) -> list[Item]:
    items = []
    for n, rec in read_records(path, {key: str for key in REQUIRED}):
        items.append(Item(*(rec[k] for k in REQUIRED), str(rec.get("ContextType", "")),
                          str(rec.get("ContextDiff", "")), str(rec.get("TargetDiff", "")),
                          f"{path}:{n}"))  # fmt: skip
    return items


def jobs_of(item: Item, comparison: str) -> list[tuple[str, str]]:
    """(context, " target") pairs to score, in the order :func:`is_correct` reads them."""
    t1, t2 = " " + item.target1, " " + item.target2
    if comparison == "targets":
        return [(item.context1, t1), (item.context1, t2)]
    return [(item.context1, t1), (item.context2, t1), (item.context2, t2), (item.context1, t2)]


def is_correct(scores: list[float], comparison: str) -> bool:
    """Strict comparisons: a tie is wrong."""
    if comparison == "targets":
        return scores[0] > scores[1]
    return scores[0] > scores[1] and scores[2] > scores[3]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _accuracy_by(items: list[Item], correct: list[bool], key: str) -> dict[str, float]:
    groups: dict[str, list[bool]] = {}
    for item, ok in zip(items, correct, strict=True):
        groups.setdefault(getattr(item, key), []).append(ok)
    return {value: _mean(oks) for value, oks in sorted(groups.items())}


@dataclass(kw_only=True)
class EwokConfig(TaskConfig):
    comparison: str = "targets"
    """targets: the 2025 pipeline's (T1 vs T2 after Context1); contexts: the EWoK paper's."""


@EVAL_TASKS.register("ewok")
class Ewok(Task):
    """World knowledge: which target sentence a context makes plausible (11 domains)."""

    default_subdir = "babylm_eval/full_eval/ewok_filtered"
    data_hint = (
        "EWoK's terms of use forbid redistribution: accept them at "
        "huggingface.co/datasets/ewok-core/ewok-core-1.0, build ewok_filtered/ with the BabyLM "
        "2025 pipeline (python -m evaluation_pipeline.ewok.dl_and_filter) and pass --data DIR"
    )
    Config = EwokConfig

    def __init__(self, cfg: EwokConfig | None = None) -> None:
        super().__init__(cfg)
        if self.cfg.comparison not in COMPARISONS:
            raise UserError(
                f"ewok comparison {self.cfg.comparison!r}: choose from {', '.join(COMPARISONS)}"
            )

    def read(self, folder: Path) -> list[Item]:
        groups: dict[str, list[Item]] = {}
        for path in data_files(Path(folder), self.cfg.subtasks):
            for item in read_items(path):
                groups.setdefault(item.domain, []).append(item)
        if not groups:
            raise UserError(f"{folder} holds no EWoK items")
        groups = subsample(groups, self.cfg.max_items_per_subtask, self.cfg.seed)
        return [item for name in sorted(groups) for item in groups[name]]

    def evaluate(self, scorer: Scorer, folder: Path, *, items_path: Path | None = None) -> dict:
        items = self.read(folder)
        comparison = self.cfg.comparison
        start = time.perf_counter()
        jobs = list(dict.fromkeys(job for item in items for job in jobs_of(item, comparison)))
        values = scorer.continuations([c for c, _ in jobs], [t for _, t in jobs])
        by_job = dict(zip(jobs, values, strict=True))
        seconds = time.perf_counter() - start

        correct, rows = [], []
        for item in items:
            scores = [by_job[job] for job in jobs_of(item, comparison)]
            ok = is_correct(scores, comparison)
            correct.append(ok)
            rows.append({"domain": item.domain, "source": item.source,
                         "context1": item.context1, "context2": item.context2,
                         "target1": item.target1, "target2": item.target2,
                         "context_type": item.context_type,
                         "context_contrast": item.context_contrast,
                         "target_contrast": item.target_contrast,
                         "scores": scores, "correct": ok})  # fmt: skip
        if items_path is not None:
            write_jsonl(items_path, rows)

        by_domain: dict[str, list[bool]] = {}
        for item, ok in zip(items, correct, strict=True):
            by_domain.setdefault(item.domain, []).append(ok)
        subtasks = {d: {"score": _mean(v), "n": len(v)} for d, v in sorted(by_domain.items())}
        score = _mean(r["score"] for r in subtasks.values())
        return {
            **self.head(scorer, folder),
            "score": score,
            "macro": score,
            "subtasks": subtasks,
            "comparison": comparison,
            "context_types": _accuracy_by(items, correct, "context_type"),
            "context_contrasts": _accuracy_by(items, correct, "context_contrast"),
            "target_contrasts": _accuracy_by(items, correct, "target_contrast"),
            "item_accuracy": _mean(correct),
            "n_items": len(items),
            "n_sentences": len(jobs),
            "seconds": seconds,
            "sentences_per_s": len(jobs) / seconds if seconds > 0 else float("inf"),
        }
