"""Entity tracking (Kim & Schuster 2023, as packaged by BabyLM 2025): which box holds what.

Each record has ``input_prefix`` ("Box 0 contains the pot, ... Move the pot from Box 0 to
Box 3. Box 3 contains ") and five ``options``; the **first option is the correct one** (the 2025
pipeline's ``decode_entity_tracking`` sets ``label = 0`` for every record). Each option is scored
as a continuation given the prefix, summed over the option's tokens only, and the item is
correct iff the first option scores strictly higher than every other (ties are wrong).

Tokenization matches the pipeline, which tokenizes ``prefix + option`` as one string and scores
the tokens that overlap the option: the prefix's trailing space is moved onto the option
(context ``"... Box 3 contains"``, continuation ``" the pot."``), so the byte-level BPE sees the
same word-initial tokens as in running text.

Aggregation as in the pipeline: accuracy per subset ``<file>_<numops>_ops``; a file's accuracy
(``splits``: ambiref, move_contents, regular) is the mean over its subsets; ``score`` is the mean
over files. ``item_accuracy`` is the plain fraction of items correct.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from thrifty.errors import UserError
from thrifty.eval.records import data_files, read_records, stem, subsample, write_jsonl
from thrifty.eval.tasks import EVAL_TASKS, Scorer, Task


@dataclass(frozen=True)
class Item:
    split: str  # file name: ambiref, move_contents, regular
    subset: str  # "<split>_<numops>_ops", the pipeline's UID
    prefix: str
    options: tuple[str, ...]  # options[0] is correct
    source: str  # "file:line"


def read_items(path: Path) -> list[Item]:
    items = []
    for n, rec in read_records(path, {"input_prefix": str, "options": list}):
        options = rec["options"]
        if len(options) < 2 or not all(isinstance(o, str) for o in options):
            raise UserError(f"{path}:{n}: 'options' must be a list of at least two strings")
        subset = f"{stem(path)}_{rec.get('numops', 0)}_ops"
        items.append(Item(stem(path), subset, rec["input_prefix"], tuple(options), f"{path}:{n}"))
    return items


def split_prefix(prefix: str, option: str) -> tuple[str, str]:
    """(context, continuation) with the prefix's trailing whitespace moved onto the option."""
    context = prefix.rstrip()
    return context, prefix[len(context) :] + option


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@EVAL_TASKS.register("entity_tracking")
class EntityTracking(Task):
    """Pick the box contents that follow from the described operations (5 options)."""

    default_subdir = "babylm_eval/full_eval/entity_tracking"

    def read(self, folder: Path) -> list[Item]:
        groups: dict[str, list[Item]] = {}
        for path in data_files(Path(folder), self.cfg.subtasks):
            for item in read_items(path):
                groups.setdefault(item.subset, []).append(item)
        if not groups:
            raise UserError(f"{folder} holds no entity-tracking items")
        groups = subsample(groups, self.cfg.max_items_per_subtask, self.cfg.seed)
        return [item for name in sorted(groups) for item in groups[name]]

    def evaluate(self, scorer: Scorer, folder: Path, *, items_path: Path | None = None) -> dict:
        items = self.read(folder)
        start = time.perf_counter()
        jobs = list(dict.fromkeys(split_prefix(i.prefix, o) for i in items for o in i.options))
        values = scorer.continuations([c for c, _ in jobs], [t for _, t in jobs])
        by_job = dict(zip(jobs, values, strict=True))
        seconds = time.perf_counter() - start

        correct: dict[str, list[bool]] = {}
        rows = []
        for item in items:
            scores = [by_job[split_prefix(item.prefix, o)] for o in item.options]
            ok = scores[0] > max(scores[1:])  # ties are wrong
            correct.setdefault(item.subset, []).append(ok)
            # A tie with the first option counts as wrong, so the first is then not predicted.
            best = 0 if ok else max(range(1, len(scores)), key=scores.__getitem__)
            rows.append({"subset": item.subset, "source": item.source, "prefix": item.prefix,
                         "options": list(item.options), "scores": scores, "predicted": best,
                         "correct": ok})  # fmt: skip
        if items_path is not None:
            write_jsonl(items_path, rows)

        subtasks = {s: {"score": _mean(v), "n": len(v)} for s, v in sorted(correct.items())}
        split_of = {item.subset: item.split for item in items}
        by_split: dict[str, list[float]] = {}
        for name, res in subtasks.items():
            by_split.setdefault(split_of[name], []).append(res["score"])
        splits = {s: _mean(v) for s, v in sorted(by_split.items())}
        score = _mean(splits.values())
        return {
            **self.head(scorer, folder),
            "score": score,
            "macro": score,
            "subtasks": subtasks,
            "splits": splits,
            "item_accuracy": _mean(ok for v in correct.values() for ok in v),
            "n_items": len(items),
            "n_sentences": len(jobs),
            "seconds": seconds,
            "sentences_per_s": len(jobs) / seconds if seconds > 0 else float("inf"),
        }
