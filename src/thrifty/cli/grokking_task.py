"""`thrifty grokking-task`: prepare modular arithmetic as a dataset (Power et al. 2022, grokking).

The training split holds ``--train-fraction`` of all equations, the validation split the rest,
so validation is the test set of the grokking check (``thrifty.data.modular``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thrifty.data.modular import OPERATIONS, TaskSettingError, check_task
from thrifty.errors import UserError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `grokking-task` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "grokking-task",
        help="prepare all equations a op b = c (mod p) as a dataset with a held-out split",
        description="Write every equation 'a op b = c' modulo p to DIR.equations.txt, one per "
        "line, and prepare it into the dataset folder DIR: a seeded share of the equations is "
        "the training split, the others the validation (test) split.",
    )
    p.add_argument("--modulus", type=int, default=97, metavar="P", help="the modulus p (>= 2)")
    p.add_argument(
        "--operation",
        default="add",
        metavar="OP",
        help=f"one of {', '.join(OPERATIONS)} (div needs a prime modulus)",
    )
    p.add_argument(
        "--train-fraction",
        type=float,
        default=0.5,
        metavar="F",
        help="share of the equations in the training split, in (0, 1)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the split")
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="dataset folder to create"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.add_argument("--quiet", action="store_true", help="no summary")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    try:  # before anything is written, in the words of the command line
        check_task(args.modulus, args.operation, args.train_fraction)
    except TaskSettingError as e:
        option = "--" + e.setting.replace("_", "-")
        raise UserError(f"{option} {e.value}: {e.problem}") from None

    from thrifty.data.modular import equations_path, prepare_modular

    manifest = prepare_modular(
        args.out,
        modulus=args.modulus,
        operation=args.operation,
        train_fraction=args.train_fraction,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    if not args.quiet:
        docs, tokens = manifest["documents"], manifest["tokens"]
        print(f"prepared {args.out} from {equations_path(args.out)}")
        print(f"  train: {docs['train']:,} equations, valid (held out): {docs['valid']:,}")
        print(f"  vocab {manifest['vocab_size']:,}, {tokens['train'] // docs['train']} tokens "
              "per training equation with its <s>")  # fmt: skip
    return 0
