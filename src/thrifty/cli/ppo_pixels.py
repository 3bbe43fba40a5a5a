"""`thrifty ppo-pixels` and `thrifty pretrain-cnn-ae`: PPO on MiniGrid frames with frozen slots
(a ``slot_ae`` run), a CNN from scratch or a frozen CNN autoencoder (``thrifty.rl.pixel_ppo``),
and the autoencoder's pretraining on prepared frames (``thrifty.rl.cnn_ae``). Both need
``pip install 'thrifty[rl]'``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thrifty.cli.online_options import add_online_options, online_settings
from thrifty.rl.frames import DEFAULT_ENV


def add_parser(subparsers: Any) -> None:
    """Register `ppo-pixels` and `pretrain-cnn-ae` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "ppo-pixels",
        help="PPO on MiniGrid frames: frozen slots, a CNN from scratch or a frozen CNN AE",
        description="Train PPO (Stable-Baselines3) on RGB frames of the agent's view for "
        "--steps environment steps, with features from --arm: slots (the frozen encoder and "
        "Slot Attention of a slot_ae run, then a trained transformer pooling), cnn (trained "
        "from scratch) or cnn-ae (a frozen pretrain-cnn-ae encoder). Evaluates on held-out "
        "levels before the first step and every --eval-every steps; writes curve.jsonl, "
        "result.json, policy.safetensors and the ledger to DIR.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="run folder to create")
    p.add_argument("--arm", default="slots", choices=("slots", "cnn", "cnn-ae"))
    p.add_argument("--encoder", metavar="PATH", help="slot_ae run (slots) or AE folder (cnn-ae)")
    p.add_argument("--env", default=DEFAULT_ENV, help=f"MiniGrid id (default {DEFAULT_ENV})")
    p.add_argument("--image-size", type=int, default=None, metavar="PX",
                   help="frame side (default: the encoder's; 28 for cnn)")  # fmt: skip
    p.add_argument("--steps", type=int, default=20_000, metavar="N", help="environment steps")
    add_online_options(p, lr=3e-4, eval_every=5_000)  # PixelPPOSettings' defaults
    p.set_defaults(func=run_ppo_pixels)

    a = subparsers.add_parser(
        "pretrain-cnn-ae",
        help="pretrain a CNN autoencoder on prepared frames (the cnn-ae arm's encoder)",
        description="Train a small convolutional autoencoder on the train split of the "
        "prepared image set FRAMES and write its encoder, result and ledger to DIR.",
    )
    a.add_argument("frames", type=Path, metavar="FRAMES", help="a prepared image set")
    a.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to create")
    a.add_argument("--steps", type=int, default=500, metavar="N", help="optimizer steps")
    a.add_argument("--batch-size", type=int, default=32, metavar="N")
    a.add_argument("--lr", type=float, default=1e-3)
    a.add_argument("--seed", type=int, default=0, metavar="N")
    a.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    a.set_defaults(func=run_pretrain)


def run_ppo_pixels(args: argparse.Namespace) -> int:
    from thrifty.rl.requires import require_rl

    require_rl()
    from thrifty.rl.pixel_ppo import PixelPPOSettings, run_pixel_ppo

    settings = PixelPPOSettings(
        arm=args.arm,
        encoder=args.encoder,
        env=args.env,
        image_size=args.image_size,
        steps=args.steps,
        **online_settings(args),
    )
    result = run_pixel_ppo(args.out, settings, overwrite=args.overwrite)
    first, final = result["first"], result["final"]
    print(
        f"{result['arm']}: success {first['success_rate']:.0%}, return "
        f"{first['mean_return']:.2f} before any step -> {final['success_rate']:.0%}, "
        f"{final['mean_return']:.2f} after {result['env_steps']:,} environment steps "
        f"({settings.eval_episodes} held-out levels)"
    )
    print(f"wrote {args.out}")
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from thrifty.rl.cnn_ae import pretrain_cnn_ae

    result = pretrain_cnn_ae(
        args.frames,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(
        f"CNN autoencoder: loss {result['first_loss']:.4f} -> {result['final_loss']:.4f} in "
        f"{args.steps} steps; wrote {args.out}"
    )
    return 0
