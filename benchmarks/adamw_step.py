"""The AdamW step alone on CPU: torch's default multi-tensor (foreach) step against the fused one,
on the parameters of thrifty's model sizes, as ``thrifty.train.optim.build_optimizer`` groups them.

Run from the repository root::

    . .venv/bin/activate
    python benchmarks/adamw_step.py --sizes mini small --threads 2

Each size gets random gradients once; the two optimizers then take turns, one step each, for
``--steps`` steps after ``--warmup`` each, and the table gives the median step time of each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from thrifty.config import ModelConfig, TrainConfig
from thrifty.models.transformer import Transformer
from thrifty.train.optim import param_groups


def step_times(size: str, warmup: int, steps: int) -> tuple[int, dict[str, float]]:
    """The model's parameter count, and each optimizer's median step time (s)."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size=size, vocab_size=8192))
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    tc = TrainConfig(max_steps=1)
    optimizers = {
        kind: torch.optim.AdamW(
            param_groups(model, tc), lr=tc.lr, betas=tc.betas, eps=tc.eps, fused=fused
        )
        for kind, fused in (("foreach (default)", None), ("fused", True))
    }
    times: dict[str, list[float]] = {kind: [] for kind in optimizers}
    for i in range(warmup + steps):
        for kind, optimizer in optimizers.items():
            start = time.perf_counter()
            optimizer.step()
            if i >= warmup:
                times[kind].append(time.perf_counter() - start)
    return model.num_params(), {kind: statistics.median(t) for kind, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["mini", "small"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, fp32; median of {args.steps} steps")
    print("\n| size | params | foreach (default) ms | fused ms | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for size in args.sizes:
        params, t = step_times(size, args.warmup, args.steps)
        foreach, fused = t["foreach (default)"] * 1e3, t["fused"] * 1e3
        print(f"| {size} | {params / 1e6:.2f}M | {foreach:.1f} | {fused:.1f} | "
              f"{foreach / fused:.1f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
