"""Zero-shot task files: reading ``*.jsonl[.gz]`` folders, seeded subsamples, per-item output.

Every task of the BabyLM evaluation data (``blimp/``, ``babylm_eval/...``) is a folder of JSON
lines files, one file per paradigm or subset. Errors name the file and line, so a broken
download is found by reading the message, not the traceback.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError
from thrifty.registry import suggest

T = TypeVar("T")
SUFFIXES = (".jsonl", ".jsonl.gz")


def stem(path: Path) -> str:
    """File name without ``.jsonl[.gz]``: BLiMP's paradigm UID, an entity-tracking subset."""
    return path.name.removesuffix(".gz").removesuffix(".jsonl")


def data_files(folder: Path, names: Sequence[str] | None = None) -> list[Path]:
    """The ``*.jsonl[.gz]`` files of ``folder`` (or ``folder`` itself), optionally by stem."""
    if not folder.exists():
        raise UserError(f"evaluation data not found: {folder}")
    files = (
        [folder]
        if folder.is_file()
        else sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIXES))
    )
    if not files:
        raise UserError(f"{folder} holds no *.jsonl or *.jsonl.gz files")
    if names:
        stems = {stem(p): p for p in files}
        unknown = [n for n in names if n not in stems]
        if unknown:
            raise UserError(f"{unknown[0]!r} not in {folder}{suggest(unknown[0], sorted(stems))}")
        files = [p for p in files if stem(p) in set(names)]
    return files


def read_records(path: Path, required: dict[str, type | tuple[type, ...]]) -> Iterator[tuple]:
    """(line number, record) for each non-empty line; ``required`` maps field -> type(s)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                if not isinstance(rec, dict):
                    raise UserError(f"{path}:{n}: expected a JSON object")
                for key, kind in required.items():
                    if not isinstance(rec.get(key), kind):
                        raise UserError(f"{path}:{n}: missing or ill-typed field {key!r}")
                yield n, rec
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None


def subsample(groups: dict[str, list[T]], per_group: int | None, seed: int) -> dict[str, list[T]]:
    """At most ``per_group`` items of each group, in file order.

    A group's sample depends only on (seed, group name), so it does not change when other groups
    are filtered out or added.
    """
    if per_group is None:
        return groups
    if per_group < 1:
        raise UserError(f"max items per subtask must be >= 1, got {per_group}")
    out = {}
    for name, items in groups.items():
        if len(items) > per_group:
            rng = random.Random(f"{seed}:{name}")  # str seeds hash stably across runs
            keep = sorted(rng.sample(range(len(items)), per_group))
            items = [items[i] for i in keep]
        out[name] = items
    return out


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Per-item scores, one JSON object a line, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
