"""`thrifty demos` and `thrifty ppo`: record planner demonstrations in a MiniGrid environment
(``thrifty.rl.demos``) and run online PPO from scratch, from a behaviour-cloned policy, or
with concurrent behaviour cloning (``thrifty.rl.ppo``). Both need ``pip install 'thrifty[rl]'``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thrifty.cli.online_options import add_online_options, online_settings

DEFAULT_ENV = "MiniGrid-DoorKey-5x5-v0"


def add_parser(subparsers: Any) -> None:
    """Register `demos` and `ppo` on the `thrifty` subcommand parsers."""
    d = subparsers.add_parser(
        "demos",
        help="record MiniGrid demonstrations by a BFS planner, for objective bc",
        description="Play --episodes procedurally generated levels of --env with the planner's "
        "shortest plan (a random action with probability --noise, then replan) and write them "
        "as a prepared dataset (train / valid levels apart, ledger in transitions) to DIR.",
    )
    d.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset to create")
    d.add_argument("--env", default=DEFAULT_ENV, help=f"MiniGrid id (default {DEFAULT_ENV})")
    d.add_argument("--episodes", type=int, default=50, metavar="N", help="training episodes")
    d.add_argument("--valid-episodes", type=int, default=10, metavar="N")
    d.add_argument("--noise", type=float, default=0.0, help="chance of a random action a step")
    d.add_argument("--levels", type=int, default=None, metavar="N", help="distinct training levels")
    d.add_argument("--seed", type=int, default=0, metavar="N")
    d.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    d.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    d.set_defaults(func=run_demos)

    p = subparsers.add_parser(
        "ppo",
        help="online PPO (Stable-Baselines3) in MiniGrid, optionally from a bc run",
        description="Train PPO for --steps environment steps (whole rollouts within the "
        "budget), evaluating the success rate on held-out levels before the first step and "
        "every --eval-every steps; write curve.jsonl, result.json, policy.safetensors and the "
        "ledger (offline transitions and environment steps) to DIR.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="run folder to create")
    p.add_argument("--env", default=DEFAULT_ENV, help=f"MiniGrid id (default {DEFAULT_ENV})")
    p.add_argument("--steps", type=int, default=50_000, metavar="N", help="environment steps")
    p.add_argument("--init", metavar="RUN", help="a bc run whose policy starts the actor")
    p.add_argument("--config", metavar="CONFIG", help="the model to build (without --init)")
    p.add_argument("--bc-data", metavar="DIR", help="demonstrations for concurrent BC")
    p.add_argument("--bc-coef", type=float, default=0.1, help="weight λ of concurrent BC")
    add_online_options(p)
    p.set_defaults(func=run_ppo)


def run_demos(args: argparse.Namespace) -> int:
    from thrifty.rl.requires import require_rl

    require_rl()
    from thrifty.rl.demos import DemoSettings, prepare_demos

    settings = DemoSettings(
        env=args.env,
        episodes=args.episodes,
        valid_episodes=args.valid_episodes,
        noise=args.noise,
        levels=args.levels,
        seed=args.seed,
    )
    manifest = prepare_demos(args.out, settings, overwrite=args.overwrite, quiet=args.quiet)
    if not args.quiet:
        q, counts = manifest["quality"]["train"], manifest["counts"]
        print(
            f"prepared {args.out}: {counts['train']:,} training transitions in "
            f"{args.episodes} episodes on {q['distinct_levels']} levels (success "
            f"{q['success_rate']:.0%}, optimality {q['optimality']:.2f}); "
            f"{counts['valid']:,} validation transitions"
        )
    return 0


def run_ppo(args: argparse.Namespace) -> int:
    from thrifty.rl.requires import require_rl

    require_rl()
    from thrifty.rl.ppo import PPOSettings, run_ppo

    settings = PPOSettings(
        env=args.env,
        steps=args.steps,
        init=args.init,
        config=args.config,
        bc_data=args.bc_data,
        bc_coef=args.bc_coef,
        **online_settings(args),
    )
    result = run_ppo(args.out, settings, overwrite=args.overwrite)
    first, final = result["first"], result["final"]
    print(
        f"{result['arm']}: success {first['success_rate']:.0%} before any step -> "
        f"{final['success_rate']:.0%} after {result['env_steps']:,} environment steps "
        f"({settings.eval_episodes} held-out levels)"
    )
    print(f"wrote {args.out}")
    return 0
