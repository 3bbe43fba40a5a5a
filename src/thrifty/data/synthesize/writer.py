"""Resumable output of ``thrifty synthesize``: nothing half-made is ever left where a finished
dataset belongs.

Generated texts go into ``<out>.partial/``: ``texts.jsonl`` (one record per text, appended and
fsynced) and ``progress.json`` (rewritten atomically after every record: the settings, the
records and bytes written, the words, and each document's extracted entities). A crash, an
unreachable generator or Ctrl-C leaves that folder; the same command then resumes at the first
record not on record (bytes past the recorded length are cut off, so a torn line is never read).
Other settings find the folder and refuse; ``--overwrite`` always starts over. The finished
dataset is built beside it and renamed to ``out`` (:func:`thrifty.atomic.replace_folder`); only
then is the partial folder removed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError

TEXTS = "texts.jsonl"
PROGRESS = "progress.json"


class PartialOutput:
    """The in-progress folder of one synthesis (module docstring)."""

    def __init__(self, out: Path, settings: dict[str, Any], overwrite: bool = False) -> None:
        self.out = Path(out)
        self.folder = self.out.with_name(f"{self.out.name}.partial")
        self.settings = json.loads(json.dumps(settings))  # as it reads back from JSON
        if self.out.exists() and not overwrite:
            raise UserError(f"{self.out} already exists; pass --overwrite to replace it")
        saved = self._saved()
        if saved is not None and saved["settings"] != self.settings and not overwrite:
            changed = sorted(
                k for k in {*saved["settings"], *self.settings}
                if saved["settings"].get(k) != self.settings.get(k)
            )  # fmt: skip
            raise UserError(
                f"{self.folder} holds an unfinished synthesis with other settings "
                f"({', '.join(changed)}); rerun it as it was to resume, or pass --overwrite "
                "to start over"
            )
        if saved is None or overwrite:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            saved = {"settings": self.settings, "records": 0, "bytes": 0, "words": 0,
                     "entities": {}}  # fmt: skip
        self.state = saved
        self.resumed = saved["records"] > 0 or bool(saved["entities"])
        path = self.folder / TEXTS
        with open(path, "ab") as f:  # cut whatever follows the last record on record
            f.truncate(saved["bytes"])
        self._save()

    def _saved(self) -> dict[str, Any] | None:
        path = self.folder / PROGRESS
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None  # never written whole: nothing to resume

    def _save(self) -> None:
        write_text_atomic(self.folder / PROGRESS, json.dumps(self.state) + "\n")

    @property
    def records(self) -> int:
        return int(self.state["records"])

    @property
    def words(self) -> int:
        return int(self.state["words"])

    def entities(self, doc: int) -> list[str] | None:
        return self.state["entities"].get(str(doc))

    def set_entities(self, doc: int, entities: list[str]) -> None:
        self.state["entities"][str(doc)] = list(entities)
        self._save()

    def append(self, record: dict[str, Any], words: int) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with open(self.folder / TEXTS, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.state["records"] += 1
        self.state["bytes"] += len(line)
        self.state["words"] += words
        self._save()

    @property
    def texts_path(self) -> Path:
        return self.folder / TEXTS

    def discard(self) -> None:
        """Remove the partial folder (after the finished dataset is in place)."""
        shutil.rmtree(self.folder, ignore_errors=True)
