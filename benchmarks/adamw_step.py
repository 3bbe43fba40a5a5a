"""The AdamW step alone on CPU: torch's default multi-tensor (foreach) step against the fused one,
on the parameters of thrifty's model sizes, as ``thrifty.train.optim.build_optimizer`` groups them.

Run from the repository root::

    . .venv/bin/activate
    python benchmarks/adamw_step.py --sizes mini small --threads 2
    python benchmarks/adamw_step.py --sizes mini --finetune   # a whole fine-tuning step

Each size gets random gradients once; the two optimizers then take turns, one step each, for
``--steps`` steps after ``--warmup`` each, and the table gives the median step time of each.
With ``--finetune`` each turn is a whole step of the fine-tuning loop instead (a classifier on
the size's backbone, a batch of 64 random sequences of 48 tokens: forward, backward, clip,
AdamW), so the table shows what the fused step saves there.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from thrifty.config import ModelConfig, TrainConfig
from thrifty.eval.finetune.classifier import Classifier
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


def finetune_step_times(size: str, warmup: int, steps: int) -> tuple[int, dict[str, float]]:
    """The classifier's parameter count, and the median time (s) of a whole fine-tuning step
    with each optimizer (parameter groups as ``thrifty.eval.finetune.trainer`` makes them)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 8192, (64, 48), generator=generator)
    padding, labels = torch.ones(64, 48, dtype=torch.bool), torch.randint(0, 2, (64,))
    runs = {}
    for kind, fused in (("foreach (default)", None), ("fused", True)):
        torch.manual_seed(0)
        backbone = Transformer(ModelConfig(size=size, vocab_size=8192, max_seq_len=64))
        model = Classifier(backbone, num_labels=2, pooling="first")
        groups = [
            {"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.01},
            {"params": [p for p in model.parameters() if p.dim() < 2]},
        ]
        runs[kind] = model, torch.optim.AdamW(groups, lr=5e-5, weight_decay=0.0, fused=fused)
    times: dict[str, list[float]] = {kind: [] for kind in runs}
    for i in range(warmup + steps):
        for kind, (model, optimizer) in runs.items():
            start = time.perf_counter()
            loss = F.cross_entropy(model(ids, padding), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if i >= warmup:
                times[kind].append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    return params, {kind: statistics.median(t) for kind, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["mini", "small"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--finetune", action="store_true", help="time whole fine-tuning steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    what = "whole fine-tuning steps" if args.finetune else "the optimizer step alone"
    print(f"torch {torch.__version__}, {args.threads} threads, fp32, {what}; median of "
          f"{args.steps} steps")  # fmt: skip
    measure = finetune_step_times if args.finetune else step_times
    print("\n| size | params | foreach (default) ms | fused ms | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for size in args.sizes:
        params, t = measure(size, args.warmup, args.steps)
        foreach, fused = t["foreach (default)"] * 1e3, t["fused"] * 1e3
        print(f"| {size} | {params / 1e6:.2f}M | {foreach:.1f} | {fused:.1f} | "
              f"{foreach / fused:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
