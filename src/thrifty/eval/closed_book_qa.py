"""Closed-book QA over the facts of a source corpus (EntiGraph's evaluation, Yang et al. 2025,
papers/entigraph.md §4-5): the model answers without the documents in context.

Each record of a ``*.jsonl`` file holds ``question``, ``answer``, ``choices`` (the answer among
them), ``kind`` and ``composed``; ``doc`` (the source document) is optional. ``kind`` is

- ``cloze``: ``question`` is a prompt the answer completes ("Zorb lives in");
- ``mc``: a question, put to the model as ``"Question: {question}\\nAnswer:"``.

Both are scored the same way: each choice is a continuation (`` " " + choice``) of the context,
log-prob summed over its tokens, and the item is right iff the answer scores strictly higher than
every other choice (ties are wrong). ``composed`` items ask for a one-hop composition of stated
facts that no source document states ("Zorb's sibling lives in"). ``thrifty synthesize-world``
writes such a file.

Subtasks: ``<kind>_direct`` and ``<kind>_composed``; ``score`` is their mean, and
``item_accuracy`` the plain fraction right (``phenomena`` repeats the subtask scores, for the
BabyLM result layout). Per-item rows record every choice's score.
"""

from __future__ import annotations

import time
from pathlib import Path

from thrifty.errors import UserError
from thrifty.eval.records import data_files, read_records, subsample, write_jsonl
from thrifty.eval.tasks import EVAL_TASKS, Scorer, Task

KINDS = ("cloze", "mc")
FIELDS = {"question": str, "answer": str, "choices": list, "kind": str, "composed": bool}


def read_items(path: Path) -> list[dict]:
    """The questions of one file, checked; errors name the file and line."""
    items = []
    for n, rec in read_records(path, FIELDS):
        choices = rec["choices"]
        if len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise UserError(f"{path}:{n}: 'choices' must be a list of at least two strings")
        if rec["answer"] not in choices:
            raise UserError(f"{path}:{n}: 'answer' {rec['answer']!r} is not among 'choices'")
        if rec["kind"] not in KINDS:
            raise UserError(f"{path}:{n}: 'kind' must be cloze or mc, got {rec['kind']!r}")
        subtask = f"{rec['kind']}_{'composed' if rec['composed'] else 'direct'}"
        items.append({"subtask": subtask, "question": rec["question"], "answer": rec["answer"],
                      "choices": list(choices), "kind": rec["kind"], "composed": rec["composed"],
                      "doc": rec.get("doc"), "source": f"{path}:{n}"})  # fmt: skip
    return items


def context(item: dict) -> str:
    if item["kind"] == "cloze":
        return item["question"].rstrip()
    return f"Question: {item['question'].strip()}\nAnswer:"


@EVAL_TASKS.register("closed_book_qa")
class ClosedBookQA(Task):
    """Recall of a corpus's facts, stated and composed, without the documents."""

    default_subdir = "closed_book_qa"
    data_hint = "thrifty synthesize-world --out DIR writes DIR/closed_book_qa/"

    def evaluate(self, scorer: Scorer, folder: Path, *, items_path: Path | None = None) -> dict:
        groups: dict[str, list[dict]] = {}
        for path in data_files(Path(folder), self.cfg.subtasks):
            for item in read_items(path):
                groups.setdefault(item["subtask"], []).append(item)
        groups = subsample(groups, self.cfg.max_items_per_subtask, self.cfg.seed)
        items = [item for name in sorted(groups) for item in groups[name]]
        if not items:
            raise UserError(f"{folder} holds no questions")
        pairs = list(dict.fromkeys((context(i), " " + c) for i in items for c in i["choices"]))
        start = time.perf_counter()
        scores = scorer.continuations([p[0] for p in pairs], [p[1] for p in pairs])
        seconds = time.perf_counter() - start
        by_pair = dict(zip(pairs, scores, strict=True))
        rows, subtasks = [], {}
        for item in items:
            s = [by_pair[(context(item), " " + c)] for c in item["choices"]]
            right = s[item["choices"].index(item["answer"])]
            correct = sum(x >= right for x in s) == 1
            wrong = max((x, c) for x, c in zip(s, item["choices"]) if c != item["answer"])[1]
            rows.append({**item, "scores": s, "correct": correct,
                         # the pipeline layout's minimal-pair fields (pipeline_layout._blimp)
                         "paradigm": item["subtask"],
                         "sentence_good": f"{context(item)} {item['answer']}",
                         "sentence_bad": f"{context(item)} {wrong}"})  # fmt: skip
            entry = subtasks.setdefault(item["subtask"], {"score": 0.0, "n": 0})
            entry["score"] += correct
            entry["n"] += 1
        for entry in subtasks.values():
            entry["score"] /= entry["n"]
        if items_path is not None:
            write_jsonl(items_path, rows)
        score = sum(e["score"] for e in subtasks.values()) / len(subtasks)
        return {
            **self.head(scorer, folder),
            "score": score,
            "macro": score,
            "subtasks": subtasks,
            "phenomena": {k: v["score"] for k, v in subtasks.items()},
            "item_accuracy": sum(r["correct"] for r in rows) / len(rows),
            "n_items": len(items),
            "n_sentences": len(pairs),
            "seconds": seconds,
            "sentences_per_s": len(pairs) / seconds if seconds > 0 else float("inf"),
        }
