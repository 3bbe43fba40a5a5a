"""`thrifty code-task`: prepare Python files as plain code, obfuscation pairs or DOBF maps
(ObscuraCoder, Paul et al. 2025; DOBF, Lachaux et al. 2021). See ``thrifty.data.code_task``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thrifty.data.code_task import FORMATS, check_task


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `code-task` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "code-task",
        help="prepare Python files as plain code, obfuscation pairs or DOBF name maps",
        description="Read every *.py file under PY_DIR ('stdlib': this interpreter's standard "
        "library), make each one's obfuscated twin (names renamed to v1/f1/c1), hold out a "
        "seeded share of the files as plain-code validation, and prepare the dataset folder "
        "--out: plain files, plus 'obf <sep> orig' / 'orig <sep> obf' pairs (grounded) or "
        "'obf <sep> v1 name1 ...' maps (dobf) making up --ratio of the training tokens.",
    )
    p.add_argument("corpus", metavar="PY_DIR", help="folder of Python files, or 'stdlib'")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset to create")
    p.add_argument("--format", default="plain", metavar="F", help=f"one of {', '.join(FORMATS)}")
    p.add_argument(
        "--ratio",
        type=float,
        default=0.3,
        metavar="R",
        help="share of training tokens in pairs, in (0, 1) (grounded, dobf)",
    )
    p.add_argument(
        "--seq-len",
        type=int,
        default=128,
        metavar="N",
        help="the training data.seq_len: no pair crosses a window of N tokens",
    )
    p.add_argument(
        "--budget-words",
        type=int,
        default=None,
        metavar="N",
        help="whole files in a seeded order, at most N words (default: all)",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.05,
        metavar="F",
        help="share of files held out as plain-code validation",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of every choice")
    p.add_argument("--vocab-size", type=int, default=8192, metavar="N", help="BPE vocabulary")
    p.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        metavar="PATH",
        help="reuse this tokenizer (another arm's tokenizer.json)",
    )
    p.add_argument("--keep-docstrings", action="store_true", help="keep docstrings in twins")
    p.add_argument("--keep-comments", action="store_true", help="keep comments in twins")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--quiet", action="store_true", help="no summary")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    ratio = 0.0 if args.format == "plain" else args.ratio
    check_task(args.format, ratio, args.seq_len, args.valid_fraction)  # before reading files

    from thrifty.data.code_task import prepare_code

    manifest = prepare_code(
        args.corpus,
        args.out,
        fmt=args.format,
        ratio=ratio,
        seq_len=args.seq_len,
        budget_words=args.budget_words,
        valid_fraction=args.valid_fraction,
        seed=args.seed,
        vocab_size=args.vocab_size,
        tokenizer_path=args.tokenizer,
        strip_docstrings=not args.keep_docstrings,
        strip_comments=not args.keep_comments,
        overwrite=args.overwrite,
    )
    if not args.quiet:
        task, words = manifest["code_task"], manifest["words"]
        tokens, files = task["tokens"], task["files"]
        print(f"prepared {args.out} ({args.format}) from {task['corpus']}")
        print(
            f"  files: {files['train']:,} train, {files['valid']:,} held out, "
            f"{len(task['skipped']):,} skipped"
        )
        print(
            f"  train tokens: {tokens['plain']:,} plain code, {tokens['pairs']:,} in "
            f"{task['units']['paired']:,} pairs, {tokens['pad']:,} padding"
        )
        derived = sum(manifest["ledger"]["derived_words"].values())
        print(
            f"  words: {words['train']:,} train ({derived:,} derived, not charged), "
            f"{words['valid']:,} valid; train with data.seq_len={args.seq_len}"
        )
    return 0
