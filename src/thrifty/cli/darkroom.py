"""`thrifty darkroom-task` and `thrifty darkroom-eval`: prepare Dark Room tasks for DPT
(``thrifty.data.darkroom``) and deploy a trained policy online and offline against the random
behaviour policy, the empirical baseline and the oracle (``thrifty.eval.darkroom_deploy``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `darkroom-task` and `darkroom-eval` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "darkroom-task",
        help="prepare Dark Room grid tasks with random-policy datasets, for objective dpt",
        description="Draw --tasks Dark Room tasks (a goal cell of a G×G grid) from --seed, each "
        "with --episodes random-policy episodes of --horizon steps, a query cell and its optimal "
        "action, and write them as a prepared dataset (train / valid, ledger in transitions).",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset to create")
    p.add_argument("--grid", type=int, default=10, metavar="G", help="side of the room")
    p.add_argument(
        "--horizon", type=int, default=None, metavar="H", help="steps per episode (default G²)"
    )
    p.add_argument("--episodes", type=int, default=4, metavar="E", help="episodes per context")
    p.add_argument("--start", default="corner", help="corner (0, 0) or centre")
    p.add_argument(
        "--holdout-goals",
        type=int,
        default=0,
        metavar="K",
        help="goal cells kept out of training; valid and evaluation use only these",
    )
    p.add_argument("--features", default="coords", help="state features: coords, or onehot-coords")
    p.add_argument("--tasks", type=int, default=50_000, metavar="N", help="training tasks")
    p.add_argument(
        "--valid-tasks", type=int, default=None, metavar="N", help="default: a tenth of --tasks"
    )
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--quiet", action="store_true", help="no summary")
    p.set_defaults(func=run_task)

    e = subparsers.add_parser(
        "darkroom-eval",
        help="online and offline return of a DPT run in Dark Room vs random, empirical, oracle",
        description="Deploy the run's policy in fresh tasks (held-out goals where the dataset "
        "has them): online for --episodes episodes in a row (sampling, history growing) and "
        "offline (argmax from a fixed random-policy dataset); write JSON and print tables.",
    )
    e.add_argument("run", help="run folder or checkpoint folder of a dpt run")
    e.add_argument("--data", help="Dark Room dataset whose settings the tasks follow")
    e.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds of fresh tasks")
    e.add_argument("--tasks", type=int, default=100, metavar="N", help="tasks per seed")
    e.add_argument(
        "--episodes", type=int, default=None, metavar="N", help="online episodes (default: E)"
    )
    e.add_argument("--out", help="output JSON (default: <run>/eval/darkroom.json)")
    e.set_defaults(func=run_eval)


def run_task(args: argparse.Namespace) -> int:
    from thrifty.data.darkroom import DarkRoomSettings, prepare_darkroom

    settings = DarkRoomSettings(
        grid=args.grid,
        horizon=args.grid * args.grid if args.horizon is None else args.horizon,
        episodes=args.episodes,
        start=args.start,
        holdout_goals=args.holdout_goals,
        features=args.features,
        seed=args.seed,
    )
    manifest = prepare_darkroom(
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
            f"tasks in a {args.grid}×{args.grid} room, {manifest['context_len']} transitions each"
        )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from thrifty.atomic import write_text_atomic
    from thrifty.eval.darkroom_deploy import evaluate, format_table, load_policy

    policy = load_policy(args.run, args.data)
    result = evaluate(
        policy, policy.settings, seeds=args.seeds, tasks=args.tasks, episodes=args.episodes
    )
    result["run"] = str(args.run)
    out = Path(args.out) if args.out else policy.run_dir / "eval" / "darkroom.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    print(f"wrote {out}")
    return 0
