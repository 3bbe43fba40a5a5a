"""Dense vs low-rank vs SLTrain vs Monarch (and Monarch with reverse sparsification) on the same
BabyLM words, at two model widths.

Every variant trains the same causal recipe on the same windows for the same steps; each
variant's learning rate is chosen from the same grid by the loss on the prepared validation
split (at every width, or with ``--tune-widths`` at those widths, the others reusing each
variant's choice), and the chosen run is then measured on BabyLM's held-out text (never trained
on). Reported per run: parameters, training FLOPs per token, tokens/s (timed after the runs,
each model on its own with its batch: the median of 3 rounds of 8 steps; Monarch→dense is
timed in its Monarch phase, 90% of its steps), peak training memory
(measured: the growth of the worker process's peak resident set over its size before training,
one process per run), held-out loss at equal steps, and validation loss at equal FLOPs (every
variant's validation curve read at the smallest total FLOPs any variant of that width reached,
interpolated in log-FLOPs between evaluations).

    python benchmarks/structured_weights.py --data DATA_ROOT --tune-widths 64

DATA_ROOT holds babylm/ (sample_600k for training, heldout for measurement).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from thrifty.models.transformer import Transformer

VARIANTS = {
    "dense": [],
    "lowrank": ["model.linear=lowrank", "model.linear.rank={rank}"],
    "sltrain": ["model.linear=sltrain", "model.linear.rank={rank}", "model.linear.density=0.03"],
    "monarch": ["model.linear=monarch", "model.linear.blocks=4"],
    "monarch→dense@0.9": ["model.linear=monarch", "model.linear.blocks=4", "train.densify_at=0.9"],
}


def rss_kib() -> int:
    """This process's current resident set, in KiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def worker(spec: dict) -> None:
    """Train one run in this process and print its peak training memory as JSON."""
    from thrifty.config import load_config
    from thrifty.train.loop import train

    cfg = load_config(None, spec["overrides"])
    before = rss_kib()
    summary = train(cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_mib": (peak - before) / 1024, "summary": summary}, default=str))


@torch.no_grad()
def heldout_loss(run: Path, data: Path, seq_len: int, n_windows: int = 512) -> float:
    from thrifty.data.tokens import TokenStore
    from thrifty.objectives import OBJECTIVES, Batch
    from thrifty.runs import load_model

    model = load_model(run).model
    store = TokenStore(data, "train")
    ids = store.windows(range(min(n_windows, store.num_windows(seq_len))), seq_len)
    probe = OBJECTIVES.build({"name": "causal_lm"}, model, seed=0)
    chunks = ids.split(32)
    return sum(probe(Batch(c)).loss.item() for c in chunks) / len(chunks)


def curve(run: Path, key: str) -> list[tuple[float, float]]:
    """(training FLOPs, value) at every evaluation. FLOPs are logged on training rows only; they
    grow linearly in the step within a segment, so they are interpolated between those rows."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [(0, 0.0)] + [(r["step"], r["flops"]) for r in rows if "flops" in r]
    steps, flops = zip(*logged)
    return [(float(np.interp(r["step"], steps, flops)), r[key]) for r in rows if key in r]


def at_flops(points: list[tuple[float, float]], flops: float) -> float:
    """The curve's value at ``flops``, linear in log-FLOPs between the points around it."""
    for (f0, y0), (f1, y1) in zip(points, points[1:]):
        if f0 <= flops <= f1:
            t = (math.log(flops) - math.log(f0)) / (math.log(f1) - math.log(f0))
            return y0 + t * (y1 - y0)
    return points[-1][1] if flops >= points[-1][0] else float("nan")


def tokens_per_s(overrides: list[str], threads: int, rounds: int = 3, steps: int = 8) -> float:
    """Training tokens/s of a run's model and batch, timed on its own: the median over rounds of
    ``steps`` forward + backward + AdamW steps on random windows, after two warm-up steps."""
    from thrifty.config import load_config
    from thrifty.objectives import OBJECTIVES, Batch

    cfg = load_config(None, overrides)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Transformer(replace(cfg.model, vocab_size=cfg_vocab(cfg)))
    objective = OBJECTIVES.build({"name": "causal_lm"}, model, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    B, T = cfg.train.batch_size, cfg.data.seq_len
    ids = torch.randint(16, model.cfg.vocab_size, (B, T + 1))

    def step():
        objective(Batch(ids)).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(), step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    return B * T / sorted(times)[len(times) // 2]


def cfg_vocab(cfg) -> int:
    from thrifty.data.tokens import load_manifest

    return load_manifest(Path(cfg.data.path))["vocab_size"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, required=False, help="folder holding babylm/")
    ap.add_argument("--work", type=Path, default=Path("bench-runs/structured_weights"))
    ap.add_argument("--widths", default="64,128")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lrs", default="2e-3,6e-3", help="the grid every variant is tuned on")
    ap.add_argument("--budget-words", type=int, default=1_000_000)
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--tune-widths",
        default="",
        help="widths whose lr is chosen from the grid (default: all); the others reuse the lr "
        "each variant chose at the first tuned width",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    from thrifty.data.prepare import prepare

    if args.data is None:
        ap.error("--data is required")
    data, heldout = args.work / "data", args.work / "heldout"
    if not data.exists():
        prepare(
            [str(args.data / "babylm" / "sample_600k")],
            data,
            budget_words=args.budget_words,
            vocab_size=args.vocab_size,
            progress=False,
        )
    if not heldout.exists():
        prepare(
            [str(args.data / "babylm" / "heldout")],
            heldout,
            budget_words=300_000,
            valid_fraction=0.0,
            tokenizer_path=data / "tokenizer.json",
            progress=False,
        )
    seq_len, results, chosen, overrides_of = args.seq_len, [], {}, {}
    for width in map(int, args.widths.split(",")):
        rank = width // 4
        for variant in args.variants.split(","):
            tried = []
            grid = args.lrs.split(",")
            if args.tune_widths and str(width) not in args.tune_widths.split(","):
                grid = [chosen[variant]]  # the lr this variant chose at the tuned width
            for lr in grid:
                name = f"d{width}-{variant.replace('→', '-to-').replace('@', '')}-lr{lr}"
                run = args.work / "runs" / name
                overrides_of[run] = overrides = [
                    f"name={name}",
                    f"runs_dir={args.work / 'runs'}",
                    f"data.path={data}",
                    f"data.seq_len={seq_len}",
                    f"model.d_model={width}",
                    f"model.n_layers={args.layers}",
                    f"model.n_heads={width // 32}",
                    f"model.max_seq_len={seq_len}",
                    f"train.max_steps={args.steps}",
                    f"train.batch_size={args.batch_size}",
                    f"train.lr={lr}",
                    "train.warmup_steps=40",
                    f"train.eval_every={max(args.steps // 8, 1)}",
                    "train.eval_batches=16",
                    f"train.log_every={max(args.steps // 20, 1)}",
                    "train.checkpoint_every=0",
                    f"train.threads={args.threads}",
                    "train.seed=0",
                    *(o.format(rank=rank) for o in VARIANTS[variant]),
                ]
                if not (run / "measured.json").exists():
                    if run.exists():
                        import shutil

                        shutil.rmtree(run)
                    spec = json.dumps({"overrides": overrides})
                    out = (
                        subprocess.run(
                            [sys.executable, __file__, "--worker", spec],
                            check=True,
                            capture_output=True,
                            text=True,
                        )
                        .stdout.strip()
                        .splitlines()[-1]
                    )
                    (run / "measured.json").write_text(out)
                measured = json.loads((run / "measured.json").read_text())
                val = curve(run, "val_loss")
                tried.append((val[-1][1], lr, run, measured))
            val_loss, lr, run, measured = min(tried, key=lambda t: t[0])
            chosen[variant] = lr
            state = json.loads(
                (
                    run
                    / "checkpoints"
                    / (run / "checkpoints" / "latest").read_text().strip()
                    / "state.json"
                ).read_text()
            )
            from thrifty.runs import load_model

            results.append(
                {
                    "width": width,
                    "variant": variant,
                    "lr": lr,
                    "run": run,
                    "params": load_model(run).model.num_params(),
                    "flops_per_token": state["flops_per_token"],
                    "tokens_per_s": tokens_per_s(overrides_of[run], args.threads),
                    "peak_mib": measured["peak_mib"],
                    "val_loss": val_loss,
                    "heldout_loss": heldout_loss(run, heldout, seq_len),
                    "curve": curve(run, "val_loss"),
                }
            )
            print(f"done: d={width} {variant} lr={lr} val {val_loss:.4f}", file=sys.stderr)
    print(
        f"\n{args.steps} steps of {args.batch_size} x {seq_len} tokens, {args.layers} layers, "
        f"lr grid {args.lrs} chosen on validation (widths {args.tune_widths or 'all'}); "
        "held-out = BabyLM heldout/ (first 512 windows)\n"
    )
    print(
        "| width | variant | lr | params | MFLOPs/token (final) | tokens/s | peak train mem "
        "(MiB) | held-out loss, equal steps | val loss at equal FLOPs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for width in sorted({r["width"] for r in results}):
        group = [r for r in results if r["width"] == width]
        budget = min(r["curve"][-1][0] for r in group)
        for r in group:
            print(
                f"| {width} | {r['variant']} | {r['lr']} | {r['params'] / 1e6:.2f}M | "
                f"{r['flops_per_token'] / 1e6:.1f} | {r['tokens_per_s']:,.0f} | "
                f"{r['peak_mib']:.0f} | {r['heldout_loss']:.4f} | "
                f"{at_flops(r['curve'], budget):.4f} |"
            )
        print(f"| {width} | (equal-FLOPs point: {budget:.3g} FLOPs) | | | | | | | |")


if __name__ == "__main__":
    main()
