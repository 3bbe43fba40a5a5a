"""`thrifty recall-task`: prepare multi-query key-value recall as a dataset, with test files at
longer lengths (the meta-tokens check; ``thrifty.data.recall``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thrifty.errors import UserError


def int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers like 128,256") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `recall-task` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "recall-task",
        help="prepare key-value recall sequences as a dataset, with longer test sequences",
        description="Write sequences of --pairs pairs 'k v' (distinct keys) scattered in filler "
        "words, then '|' and --queries of the keys with their values (which can only be "
        "recalled), of --train-len tokens to DIR.recall_train.txt and prepare them "
        "into DIR; write test sequences of each --test-lens length to DIR.recall_<L>.txt, "
        "which `thrifty length-eval RUN --recall DIR` scores.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset to create")
    p.add_argument(
        "--train-len",
        type=int,
        default=128,
        metavar="T",
        help="tokens per training sequence, <s> included: the runs' data.seq_len",
    )
    p.add_argument(
        "--test-lens",
        type=int_list,
        default=[128, 256, 512],
        metavar="L,L",
        help="lengths of the test files",
    )
    p.add_argument(
        "--examples",
        type=int,
        default=4000,
        metavar="N",
        help="training sequences (a share is held out as validation)",
    )
    p.add_argument(
        "--test-examples", type=int, default=200, metavar="N", help="sequences per test file"
    )
    p.add_argument("--pairs", type=int, default=8, metavar="P", help="pairs per sequence")
    p.add_argument("--queries", type=int, default=8, metavar="Q", help="queries per sequence")
    p.add_argument("--keys", type=int, default=676, metavar="N", help="distinct keys (<= 676)")
    p.add_argument("--values", type=int, default=90, metavar="N", help="distinct values (<= 90)")
    p.add_argument("--filler", type=int, default=70, metavar="N", help="filler words (<= 70)")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--quiet", action="store_true", help="no summary")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from thrifty.data.recall import Vocabulary, prepare_recall, recall_file

    if args.examples < 2 or args.test_examples < 1:
        raise UserError("--examples must be at least 2 and --test-examples at least 1")
    manifest = prepare_recall(
        args.out,
        train_len=args.train_len,
        test_lens=args.test_lens,
        examples=args.examples,
        test_examples=args.test_examples,
        pairs=args.pairs,
        queries=args.queries,
        vocab=Vocabulary(args.keys, args.values, args.filler),
        seed=args.seed,
        overwrite=args.overwrite,
    )
    if not args.quiet:
        docs = manifest["documents"]
        print(
            f"prepared {args.out}: {docs['train']:,} training, {docs['valid']:,} validation "
            f"sequences of {args.train_len} tokens (vocab {manifest['vocab_size']:,})"
        )
        for length in args.test_lens:
            print(f"  test: {recall_file(args.out, length)}")
    return 0
