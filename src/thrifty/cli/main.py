"""The ``thrifty`` command: subcommand dispatch, logging, and one-line errors for bad input."""

from __future__ import annotations

import argparse
import logging
import sys

from thrifty import __version__
from thrifty.errors import UserError
from thrifty.host_allocator import reuse_large_blocks


def build_parser() -> argparse.ArgumentParser:
    from thrifty.cli import (
        audit,
        bandit,
        code_task,
        darkroom,
        demo,
        distill,
        ensemble,
        export,
        finetune,
        grokking_task,
        label_efficiency,
        length_eval,
        minigrid,
        ppo_pixels,
        prepare,
        probe,
        recall_task,
        scaling,
        soup,
        submit,
        sweep,
        synthesize,
        train,
        upcycle,
        zero_shot,
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
        probe,
        zero_shot,
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
        upcycle,
        grokking_task,
        code_task,
        recall_task,
        length_eval,
        submit,
        synthesize,
        bandit,
        darkroom,
        minigrid,
        ppo_pixels,
    ):
        module.add_parser(sub)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse and run one command. Commands with a ``key.path=value`` overrides list take them
    after options too (``thrifty train CONFIG --resume auto train.lr=1e-3``): argparse stops
    filling a positional list at the first option, and its intermixed parser does not work
    with subcommands, so such left-over words are appended to the list in the order given."""
    args, extra = parser.parse_known_args(argv)
    overrides = getattr(args, "overrides", None)
    if extra and isinstance(overrides, list) and all(_is_override(x) for x in extra):
        args.overrides = [*overrides, *extra]
    elif extra:
        parser.parse_args(argv)  # exits 2 with argparse's message for the unknown words
    return args.func(args) or 0


def _is_override(word: str) -> bool:
    return "=" in word and not word.startswith("-")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    reuse_large_blocks()  # before any tensor: freed large blocks reused, not faulted in anew
    try:
        return dispatch(build_parser(), argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
