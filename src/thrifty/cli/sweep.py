"""``thrifty sweep SWEEP.yaml --jobs N``: run a grid of `thrifty train` processes, skipping
finished runs; ``--print`` lists the commands for a scheduler; ``--search`` runs the
regularized recipe search (coordinate descent over lr / epochs / weight decay)."""

from __future__ import annotations

import argparse
import os
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a sweep of training runs (grid, data ladder, recipe search)",
        description=__doc__,
    )
    p.add_argument("sweep", help="SWEEP.yaml (format: configs/sweeps/example.yaml)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="runs trained at once")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch threads per run (default: CPU cores // jobs)",
    )
    p.add_argument("--dir", default=None, help="sweep folder (default: sweep_dir or sweeps/NAME)")
    p.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the prepare / train commands instead of running them",
    )
    p.add_argument(
        "--search",
        action="store_true",
        help="coordinate descent from the file's search: section (evaluations cached)",
    )
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from thrifty.analysis.runner import run_sweep, search_sweep
    from thrifty.analysis.sweep import (
        load_sweep,
        prepare_commands,
        prepare_ladder,
        shell_line,
        train_command,
        write_configs,
    )

    sweep = load_sweep(args.sweep, args.dir)
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    if args.print_only:
        runs = [] if args.search else sweep.build()
        write_configs(runs)
        for cmd in prepare_commands(sweep):
            print(shell_line(cmd))
        for r in runs:
            print(shell_line(train_command(r, args.threads)))
        if args.search:
            print("# --search decides its next runs from the results; it cannot be printed")
        return 0
    prepare_ladder(sweep)
    if args.search:
        result = search_sweep(sweep, jobs=args.jobs, threads=threads)
        point = " ".join(f"{k}={v:g}" for k, v in result.best.items())
        state = "locally optimal" if result.converged else "stopped before convergence"
        print(f"best: {point} -> {result.loss:.4f} ({state}; {result.new_evaluations} new runs)")
        for where, loss in result.path:
            print("  " + " ".join(f"{k}={v:g}" for k, v in where.items()) + f"  {loss:.4f}")
        return 0
    rows = run_sweep(
        sweep, sweep.build(), jobs=args.jobs, threads=threads, retry_failed=args.retry_failed
    )
    failed = [n for n, r in rows.items() if r["status"] == "failed"]
    for name in failed:
        print(f"failed: {name} (log: {rows[name]['log']})", file=sys.stderr)
    print(f"index: {sweep.sweep_dir / 'index.jsonl'}")
    return 1 if failed else 0
