"""``thrifty train CONFIG [key.path=value ...]``: train a model from a YAML recipe.

Overrides may come before or after the options: ``thrifty train CONFIG --resume auto
train.max_steps=2000`` continues a run with a later end.
"""

from __future__ import annotations

import argparse
import json

from thrifty.config import dump_config, load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a config", description=__doc__)
    p.add_argument("config", nargs="?", help="YAML recipe (omit for the defaults)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=1e-3")
    p.add_argument(
        "--resume",
        metavar="auto|CHECKPOINT",
        help="auto: continue from the run's latest checkpoint if there is one",
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # only overrides were given
        config, overrides = None, [config, *overrides]
    cfg = load_config(config, overrides)
    if args.dry_run:
        print(dump_config(cfg), end="")
        return 0
    from thrifty.train.loop import train

    summary = train(cfg, resume=args.resume)
    print(json.dumps(summary, indent=1))
    return 0
