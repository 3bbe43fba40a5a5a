"""``thrifty soup RUN_A RUN_B ... --out RUN_SOUP``: average compatible checkpoints' weights.

A uniform model soup (Wortsman et al. 2022), MCL's "course soup" (Chen et al. 2023) when the
ingredients are discriminators trained with different course mixtures. The result is a run folder
that eval, fine-tuning and export read like any other; its ledger sums the words every
ingredient saw (see ``thrifty.train.soup``).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "soup",
        help="average the weights of compatible runs into a new run folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders or checkpoint folders")
    p.add_argument("--out", required=True, help="the soup's run folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from thrifty.data.budget import Ledger
    from thrifty.train.soup import make_soup

    out = make_soup(args.runs, args.out, overwrite=args.overwrite)
    ledger = Ledger.load(out)
    print(
        f"wrote {out}: uniform soup of {len(args.runs)} checkpoints; the ledger charges "
        f"{ledger.words_seen:,.0f} words seen ({ledger.epochs:.2f} epochs)"
    )
    return 0
