"""`thrifty audit`: print a ledger and fail (exit 1) when a budget rule was broken: the charged
words (every model's reading, the tokenizer's included) above the budget, or more passes over
some word than the epoch limit (the model's own, plus its start model's, replayed windows' and a
distillation teacher's, wherever they share source files; ``thrifty.data.budget``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thrifty.errors import UserError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `audit` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "audit",
        help="print the word ledger of a dataset or run; exit 1 if a rule was broken",
        description="Print the ledger of a prepared dataset (manifest.json) or a run folder "
        "(ledger.json). Exits 1 when the charged words exceed the budget, or when some word is "
        "seen more often than the epoch limit allows (counting the start model's passes, "
        "replayed windows and distillation teachers).",
    )
    p.add_argument("path", type=Path, metavar="PATH", help="prepared dataset or run folder")
    p.set_defaults(func=run)
    return p


def find_ledger(path: Path) -> Any:
    """The ledger of a run folder, a prepared dataset, or a ledger/manifest file."""
    from thrifty.data.budget import LEDGER_FILE, Ledger
    from thrifty.data.prepare import MANIFEST_FILE, load_manifest

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    # a run folder's ledger has words_seen; prefer it over any dataset manifest beside it
    if (path / LEDGER_FILE).is_file() or (path.is_file() and path.name != MANIFEST_FILE):
        return Ledger.load(path)
    if path.is_file() or (path / MANIFEST_FILE).is_file():
        manifest = load_manifest(path)
        return Ledger.from_dict(manifest["ledger"], f"{path} (manifest ledger)")
    raise UserError(f"{path}: neither a run folder ({LEDGER_FILE}) nor a dataset ({MANIFEST_FILE})")


def run(args: argparse.Namespace) -> int:
    ledger = find_ledger(args.path)
    for line in ledger.summary_lines():
        print(line)
    problems = ledger.violations()
    for problem in problems:
        print(f"VIOLATION: {problem}")
    if not problems:
        print("ok: within the budget and the epoch limit")
    return 1 if problems else 0
