"""(Super)GLUE tasks for fine-tuning: where their files live, how a record becomes input text.

Text fields follow the BabyLM 2025 evaluation pipeline: a task has a first segment and, for
pair tasks, a second one (``babylm_challenge.md`` §3 item 4). BoolQ puts the question first and
the passage second; MultiRC's first segment is ``Question: {question} Answer: {answer}`` and its
second the paragraph; WSC asks ``Does "{span2}" refer to "{span1}" in this passage?`` before the
text. The primary metric is the one BabyLM reports: F1 for MRPC and QQP, Matthews correlation
for CoLA, accuracy otherwise.

Files sit under a data root laid out like the shared data folder:
``babylm_eval/full_eval/glue_filtered/<task>.{train,valid}.jsonl[.gz]`` and
``glue/sst2/{train,dev}.tsv[.gz]``. The evaluation split is ``valid`` (SST-2: ``dev``).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from thrifty.errors import UserError
from thrifty.registry import suggest

GLUE_DIR = "babylm_eval/full_eval/glue_filtered"
SST2_DIR = "glue/sst2"


@dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None
    label: int


@dataclass(frozen=True)
class TaskSpec:
    name: str
    files: dict[str, str]
    """Split name ("train", "valid") -> path under the data root, without ``.gz``."""
    fields: Callable[[dict], tuple[str, str | None]]
    """Record -> (first segment, second segment or None)."""
    num_labels: int
    metric: str
    """Primary metric: model selection and the headline number."""
    metrics: tuple[str, ...]
    """Every metric reported (the primary one first)."""


def _keys(a: str, b: str | None = None) -> Callable[[dict], tuple[str, str | None]]:
    return lambda r: (r[a], r[b] if b else None)


def _glue(task: str) -> dict[str, str]:
    return {split: f"{GLUE_DIR}/{task}.{split}.jsonl" for split in ("train", "valid")}


BINARY = ("accuracy", "f1", "mcc")
TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("boolq", _glue("boolq"), _keys("question", "passage"), 2, "accuracy", BINARY),
        TaskSpec("cola", _glue("cola"), _keys("sentence"), 2, "mcc", ("mcc", "accuracy", "f1")),
        TaskSpec(
            "mnli", _glue("mnli"), _keys("premise", "hypothesis"), 3, "accuracy", ("accuracy",)
        ),  # fmt: skip
        TaskSpec(
            "mrpc",
            _glue("mrpc"),
            _keys("sentence1", "sentence2"),
            2,
            "f1",
            ("f1", "accuracy", "mcc"),
        ),  # fmt: skip
        TaskSpec(
            "multirc",
            _glue("multirc"),
            lambda r: (f"Question: {r['question']} Answer: {r['answer']}", r["paragraph"]),
            2,
            "accuracy",
            BINARY,
        ),
        TaskSpec(
            "qqp", _glue("qqp"), _keys("question1", "question2"), 2, "f1", ("f1", "accuracy", "mcc")
        ),  # fmt: skip
        TaskSpec("rte", _glue("rte"), _keys("sentence1", "sentence2"), 2, "accuracy", BINARY),
        TaskSpec(
            "sst2",
            # test.tsv is GLUE's real SST-2 dev set (872 sentences); dev.tsv is a re-split of
            # GLUE's training sentences
            {
                "train": f"{SST2_DIR}/train.tsv",
                "valid": f"{SST2_DIR}/dev.tsv",
                "test": f"{SST2_DIR}/test.tsv",
            },
            _keys("sentence"),
            2,
            "accuracy",
            BINARY,
        ),
        TaskSpec(
            "wsc",
            _glue("wsc"),
            lambda r: (
                f'Does "{r["span2_text"]}" refer to "{r["span1_text"]}" in this passage?',
                r["text"],
            ),  # fmt: skip
            2,
            "accuracy",
            BINARY,
        ),
    )
}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise UserError(f"unknown fine-tuning task {name!r}{suggest(name, list(TASKS))}")
    return TASKS[name]


def data_root(path: str | Path | None = None) -> Path:
    """``path``, else $THRIFTY_DATA; the folder must exist."""
    if path is None:
        env = os.environ.get("THRIFTY_DATA")
        if not env:
            raise UserError(
                "no data folder: pass --data-root DIR (or data_root=) or set THRIFTY_DATA to a "
                f"folder holding {GLUE_DIR}/ and {SST2_DIR}/"
            )
        path = env
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"data folder not found: {root}")
    return root


def find_file(root: Path, relative: str) -> Path | None:
    """``relative`` under ``root``, gzipped or not; None when neither exists."""
    for candidate in (root / f"{relative}.gz", root / relative):
        if candidate.is_file():
            return candidate
    return None


def tasks_with(root: Path, split: str) -> list[str]:
    return [n for n, t in TASKS.items() if find_file(root, t.files[split]) is not None]


def split_path(spec: TaskSpec, root: Path, split: str) -> Path:
    """The file of one split, or a UserError naming it and the tasks that do have it."""
    path = find_file(root, spec.files[split])
    if path is None:
        have = ", ".join(tasks_with(root, split)) or "none"
        raise UserError(
            f"{spec.name}: no {split} file {root / spec.files[split]}[.gz]; tasks with {split} "
            f"data in {root}: {have}"
        )
    return path


def _records(path: Path):
    """(line number, dict) per record of a .jsonl or header-first .tsv, gzipped or not."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        if path.name.removesuffix(".gz").endswith(".tsv"):
            # SST-2 text holds quotes that are not CSV quoting.
            yield from enumerate(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 2)
            return
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None


def read_split(spec: TaskSpec, root: Path, split: str) -> list[Example]:
    path = split_path(spec, root, split)
    examples = []
    try:
        for n, rec in _records(path):
            try:
                a, b = spec.fields(rec)
                label = int(rec["label"])
            except (KeyError, TypeError, ValueError) as e:
                raise UserError(f"{path}:{n}: bad {spec.name} record ({e!r})") from None
            if not 0 <= label < spec.num_labels:
                raise UserError(f"{path}:{n}: label {label} not in 0..{spec.num_labels - 1}")
            examples.append(Example(str(a).strip(), None if b is None else str(b).strip(), label))
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    if not examples:
        raise UserError(f"{path}: no examples")
    return examples
