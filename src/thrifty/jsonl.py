"""Reading the JSON-lines files thrifty appends to (metrics.jsonl, a sweep's index.jsonl,
a search's search.jsonl).

A process killed while appending leaves at most its last line half-written, so a torn *last*
line is dropped; damage anywhere else means the file was altered, and is an error that names the
file and line. ``repair=True`` also cuts the torn line from the file, so the next append starts
on a line of its own instead of gluing onto the fragment.
"""

from __future__ import annotations

import json
from pathlib import Path

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError


def _parse(raw: bytes) -> dict | None:
    """The JSON object on one line, or None when the line is not one."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return row if isinstance(row, dict) else None


def read_jsonl(path: str | Path, repair: bool = False) -> list[dict]:
    """The rows of ``path`` (empty when it does not exist), tolerating a torn last line."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    lines = data.split(b"\n")
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    rows, kept = [], []
    for i, (n, line) in enumerate(numbered):
        row = _parse(line)
        if row is None:
            if i == len(numbered) - 1:  # cut short by a kill mid-write: that row never happened
                break
            raise UserError(
                f"{path}:{n}: not a JSON object, and not the last line (the file is damaged; "
                "delete or fix that line)"
            )
        rows.append(row)
        kept.append(line)
    # Rewrite when the tail is torn or lacks its newline, so that appends start a fresh line.
    if repair and data.strip() and (len(kept) < len(numbered) or not data.endswith(b"\n")):
        write_text_atomic(path, "".join(line.decode("utf-8") + "\n" for line in kept))
    return rows
