"""``thrifty sweep SWEEP.yaml --jobs N``: run a grid of `thrifty train` processes, skipping
finished runs; ``--executor slurm --slurm-partition P`` makes each run a Slurm job instead
(requeued on preemption); ``--print`` lists the commands for a scheduler; ``--search`` runs the
regularized recipe search (coordinate descent over lr / epochs / weight decay); ``--nars`` the
predictor-guided joint architecture-recipe search of FBNetV3 (``analysis/nars_search.py``)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a sweep of training runs (grid, data ladder, recipe search)",
        description=__doc__,
    )
    p.add_argument("sweep", help="SWEEP.yaml (format: configs/sweeps/example.yaml)")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="runs trained at once (default: 1; with --executor slurm, all: Slurm queues them)",
    )
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
    p.add_argument(
        "--nars",
        action="store_true",
        help="FBNetV3's predictor-guided architecture-recipe search from the nars: section",
    )
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    _add_cluster_options(p)
    p.set_defaults(func=run)


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        'cluster (submitit; needs pip install "thrifty[cluster]")',
        "each run one job, requeued on preemption; submitit's logs in <sweep_dir>/submitit/",
    )
    g.add_argument(
        "--executor",
        default="process",
        metavar="NAME",
        help="process (default: processes here), slurm, or local (submitit, this machine)",
    )
    g.add_argument("--slurm-partition", default=None, metavar="P", help="Slurm partition")
    g.add_argument("--slurm-account", default=None, metavar="A", help="Slurm account")
    g.add_argument("--slurm-qos", default=None, metavar="Q", help="Slurm quality of service")
    g.add_argument(
        "--timeout-min",
        type=int,
        default=1440,
        metavar="MIN",
        help="time limit per job (default: a day); a job that reaches it is requeued, 3 times",
    )
    g.add_argument("--gpus-per-node", type=int, default=None, metavar="N", help="GPUs per job")
    g.add_argument(
        "--cpus-per-task",
        type=int,
        default=None,
        metavar="N",
        help="CPUs per job (also the default --threads there)",
    )
    g.add_argument("--mem-gb", type=float, default=None, metavar="GB", help="memory per job")


def run(args: argparse.Namespace) -> int:
    from thrifty.analysis.cluster import check_executor
    from thrifty.analysis.runner import run_sweep, search_sweep
    from thrifty.analysis.sweep import (
        load_sweep,
        prepare_commands,
        prepare_ladder,
        shell_line,
        train_command,
        write_configs,
    )

    check_executor(args.executor)
    sweep = load_sweep(args.sweep, args.dir)
    jobs = args.jobs if args.jobs is not None else None if args.executor == "slurm" else 1
    if args.executor == "slurm":
        threads = args.threads or args.cpus_per_task
    else:
        threads = args.threads or max(1, (os.cpu_count() or 1) // (jobs or 1))
    if args.print_only:
        runs = [] if args.search or args.nars else sweep.build()
        write_configs(runs)
        for cmd in prepare_commands(sweep):
            print(shell_line(cmd))
        for r in runs:
            print(shell_line(train_command(r, args.threads)))
        if args.search or args.nars:
            print("# a search decides its next runs from the results; it cannot be printed")
        return 0
    execute = run_sweep if args.executor == "process" else _submitter(args, sweep.sweep_dir)
    prepare_ladder(sweep)
    if args.nars:
        from thrifty.analysis.nars_search import nars_sweep

        found = nars_sweep(sweep, jobs=jobs, threads=threads, execute=execute)
        point = " ".join(f"{k}={v}" for k, v in found.best.items())
        print(f"best: {point} -> {found.metric:.4f} ({len(found.measured)} measured runs)")
        return 0
    if args.search:
        result = search_sweep(sweep, jobs=jobs, threads=threads, execute=execute)
        point = " ".join(f"{k}={v:g}" for k, v in result.best.items())
        state = "locally optimal" if result.converged else "stopped before convergence"
        print(f"best: {point} -> {result.loss:.4f} ({state}; {result.new_evaluations} new runs)")
        for where, loss in result.path:
            print("  " + " ".join(f"{k}={v:g}" for k, v in where.items()) + f"  {loss:.4f}")
        return 0
    rows = execute(sweep, sweep.build(), jobs=jobs, threads=threads, retry_failed=args.retry_failed)
    failed = [n for n, r in rows.items() if r["status"] == "failed"]
    for name in failed:
        print(f"failed: {name} (log: {rows[name]['log']})", file=sys.stderr)
    print(f"index: {sweep.sweep_dir / 'index.jsonl'}")
    return 1 if failed else 0


def _submitter(args: argparse.Namespace, sweep_dir) -> Callable[..., dict[str, dict]]:
    """``submit_sweep`` with this command's executor and its parameters, checked up front so
    that bad cluster options fail before the data ladder is prepared."""
    from thrifty.analysis.cluster import make_executor, submit_sweep

    params = {
        "timeout_min": args.timeout_min,
        "gpus_per_node": args.gpus_per_node,
        "cpus_per_task": args.cpus_per_task,
        "mem_gb": args.mem_gb,
        "slurm_partition": args.slurm_partition,
        "slurm_account": args.slurm_account,
        "slurm_qos": args.slurm_qos,
    }
    make_executor(args.executor, sweep_dir / "submitit", params)
    return functools.partial(submit_sweep, executor=args.executor, params=params)
