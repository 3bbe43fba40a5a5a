"""The ``thrifty`` command: subcommand dispatch, logging, and one-line errors for bad input."""

from __future__ import annotations

import argparse
import logging
import sys

from thrifty import __version__
from thrifty.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from thrifty.cli import (
        audit,
        demo,
        distill,
        ensemble,
        export,
        finetune,
        label_efficiency,
        prepare,
        scaling,
        soup,
        sweep,
        train,
    )
    from thrifty.cli import eval as eval_cmd
    from thrifty.cli import report as report_cmd
    from thrifty.cli import select as select_cmd

    parser = argparse.ArgumentParser(
        prog="thrifty",
        description="Sample-efficient pretraining under a fixed word budget.",
    )
    parser.add_argument("--version", action="version", version=f"thrifty {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        prepare,
        train,
        eval_cmd,
        finetune,
        label_efficiency,
        export,
        audit,
        demo,
        select_cmd,
        report_cmd,
        sweep,
        ensemble,
        distill,
        scaling,
        soup,
    ):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
