"""The PPO options `thrifty ppo` and `thrifty ppo-pixels` share, with the defaults of
``thrifty.rl.online.OnlineSettings`` (a command passes the ones its own settings change)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

SHARED = (
    "seed",
    "n_envs",
    "n_steps",
    "batch_size",
    "n_epochs",
    "lr",
    "ent_coef",
    "eval_every",
    "eval_episodes",
    "greedy",
)


def add_online_options(p: argparse.ArgumentParser, **defaults: Any) -> None:
    from thrifty.rl.online import OnlineSettings

    d = {f.name: f.default for f in fields(OnlineSettings)} | defaults
    p.add_argument("--seed", type=int, default=d["seed"], metavar="N")
    p.add_argument("--n-envs", type=int, default=d["n_envs"], metavar="N")
    p.add_argument("--n-steps", type=int, default=d["n_steps"], metavar="N", help="rollout per env")
    p.add_argument(
        "--batch-size", type=int, default=d["batch_size"], metavar="N", help="PPO minibatch"
    )
    p.add_argument("--n-epochs", type=int, default=d["n_epochs"], metavar="N")
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--ent-coef", type=float, default=d["ent_coef"])
    p.add_argument("--eval-every", type=int, default=d["eval_every"], metavar="N")
    p.add_argument("--eval-episodes", type=int, default=d["eval_episodes"], metavar="N")
    p.add_argument("--greedy", action="store_true", help="evaluate the argmax policy")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run")


def online_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The shared settings as keyword arguments of a settings class."""
    return {key: getattr(args, key) for key in SHARED}
