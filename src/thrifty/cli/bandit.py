"""`thrifty bandit-task` and `thrifty bandit-eval`: prepare multi-armed bandit tasks for DPT
(``thrifty.data.bandits``) and deploy a trained policy online and offline against UCB,
Thompson sampling and LCB (``thrifty.eval.bandit_deploy``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `bandit-task` and `bandit-eval` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "bandit-task",
        help="prepare K-armed bandit tasks with in-context datasets, for objective dpt",
        description="Draw --tasks bandit tasks (arm means from U[0, 1]) from --seed, each with "
        "--horizon pulls by the behaviour policy and its optimal arm, and write them as a "
        "prepared dataset (train / valid, ledger in transitions) to DIR.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset to create")
    p.add_argument("--arms", type=int, default=5, metavar="K", help="arms per task")
    p.add_argument("--horizon", type=int, default=50, metavar="N", help="pulls per dataset")
    p.add_argument("--tasks", type=int, default=50_000, metavar="N", help="training tasks")
    p.add_argument(
        "--valid-tasks", type=int, default=None, metavar="N", help="default: a tenth of --tasks"
    )
    p.add_argument("--noise", default="gaussian", help="gaussian or bernoulli rewards")
    p.add_argument("--sigma", type=float, default=0.3, help="std of Gaussian reward noise")
    p.add_argument(
        "--behaviour", default="uniform", help="uniform, or mix (a random action mix per task)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--quiet", action="store_true", help="no summary")
    p.set_defaults(func=run_task)

    e = subparsers.add_parser(
        "bandit-eval",
        help="online regret and offline accuracy of a DPT run vs UCB, Thompson, LCB",
        description="Deploy the run's policy on fresh tasks of its dataset's settings: online "
        "(sampling from its prediction, history growing), and offline (argmax from fixed "
        "datasets of each size); write JSON and print tables.",
    )
    e.add_argument("run", help="run folder or checkpoint folder of a dpt run")
    e.add_argument("--data", help="bandit dataset whose settings the tasks follow")
    e.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds of fresh tasks")
    e.add_argument("--tasks", type=int, default=200, metavar="N", help="tasks per seed")
    e.add_argument("--horizon", type=int, default=None, metavar="N", help="online pulls")
    e.add_argument("--out", help="output JSON (default: <run>/eval/bandit.json)")
    e.set_defaults(func=run_eval)


def run_task(args: argparse.Namespace) -> int:
    from thrifty.data.bandits import BanditSettings, prepare_bandits

    settings = BanditSettings(
        arms=args.arms,
        horizon=args.horizon,
        noise=args.noise,
        sigma=args.sigma,
        behaviour=args.behaviour,
        seed=args.seed,
    )
    manifest = prepare_bandits(
        args.out,
        settings,
        tasks=args.tasks,
        valid_tasks=args.valid_tasks,
        overwrite=args.overwrite,
    )
    if not args.quiet:
        counts = manifest["counts"]
        print(
            f"prepared {args.out}: {counts['train']:,} training, {counts['valid']:,} validation "
            f"tasks of {args.arms} arms, {args.horizon} pulls each"
        )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from thrifty.atomic import write_text_atomic
    from thrifty.eval.bandit_deploy import evaluate, format_table, load_policy

    policy = load_policy(args.run, args.data)
    result = evaluate(
        policy, policy.settings, seeds=args.seeds, tasks=args.tasks, horizon=args.horizon
    )
    result["run"] = str(args.run)
    out = Path(args.out) if args.out else policy.run_dir / "eval" / "bandit.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    print(f"wrote {out}")
    return 0
