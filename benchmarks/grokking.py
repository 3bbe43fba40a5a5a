"""Small-scale check of MoE pathway metrics on grokking (Li, Fan & Zhou 2025,
papers/grokking_pathways.md §5; the task is Power et al. 2022's modular arithmetic).

Prepares all equations ``a op b = c (mod p)`` with a seeded share held out (``thrifty
grokking-task``), trains ``configs/grokking-moe.yaml`` on the rest for ~100 epochs with
weight decay 1.0, then reads ``metrics.jsonl`` (train loss, validation loss, the pathway metrics
the loop logs on fixed training windows) and measures exact-match answer accuracy on the
training and held-out equations at every checkpoint. Prints a markdown table, the steps at
which each accuracy first reached 99%, and how each pathway metric moves with test accuracy;
``--plot`` draws the curves.

The card expects test accuracy to jump long after training accuracy saturates, with the pathway
distance falling and the consistency rising around the same time.

    OMP_NUM_THREADS=1 python benchmarks/grokking.py --modulus 97 --threads 1 \\
        --work bench-runs/grokking --plot grokking.png

4000 steps of batch 128 take about 7 minutes on one core. On cores other jobs share, use one
thread: two threads were 10-50x slower per step there (each waits for the other at every op).

Extra ``key=value`` arguments override the config as on ``thrifty train`` (e.g.
``train.weight_decay=0.3 train.max_steps=4000``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from thrifty.config import load_config
from thrifty.data.modular import prepare_modular
from thrifty.data.tokens import TokenStore
from thrifty.eval.equations import answer_accuracy
from thrifty.runs import CHECKPOINTS, load_model
from thrifty.train.loop import train

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "grokking-moe.yaml"
COLUMNS = ("step", "epoch", "train loss", "val loss", "train acc", "test acc",
           "pathway distance", "pathway consistency")  # fmt: skip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--modulus", type=int, default=97)
    p.add_argument("--operation", default="add")
    p.add_argument("--train-fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of training")
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--work", type=Path, default=Path("grokking-work"), help="data and runs here")
    p.add_argument("--name", default=None, help="run name (default: from the settings)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--plot", type=Path, default=None, help="write the curves as a PNG here")
    p.add_argument("--out", type=Path, default=None, help="also write the report (markdown)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    return p.parse_args()


def prepare_task(args: argparse.Namespace) -> Path:
    tag = f"{args.operation}-{args.modulus}-f{args.train_fraction:g}-s{args.seed}"
    data = args.work / "data" / tag
    if not (data / "manifest.json").is_file():
        prepare_modular(data, modulus=args.modulus, operation=args.operation,
                        train_fraction=args.train_fraction, seed=args.seed)  # fmt: skip
    return data


def run_config(args: argparse.Namespace, data: Path):
    manifest = json.loads((data / "manifest.json").read_text())
    per_equation = manifest["tokens"]["train"] // manifest["documents"]["train"]
    valid = manifest["documents"]["valid"]
    base = load_config(args.config, args.overrides)
    # settings that change the run change its name, so resume="auto" never mixes two runs
    tag = hashlib.sha256(" ".join(args.overrides).encode()).hexdigest()[:8]
    name = args.name or f"{base.name}-{data.name}" + (f"-{tag}" if args.overrides else "")
    overrides = [
        f"data.path={data}", f"runs_dir={args.work / 'runs'}", f"name={name}",
        f"train.seed={args.seed}",
        # one window per equation, and validation over the whole held-out split
        f"data.seq_len={per_equation}",
        f"train.eval_batches={math.ceil(valid / base.train.batch_size)}",
        *([f"train.threads={args.threads}"] if args.threads else []),
        *args.overrides,
    ]  # fmt: skip
    return load_config(args.config, overrides)


def read_metrics(run_dir: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """metrics.jsonl as {step: training row} and {step: evaluation row}."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return (
        {r["step"]: r for r in rows if "loss" in r},
        {r["step"]: r for r in rows if "val_loss" in r},
    )


def window_mean(rows: dict[int, dict], after: int, upto: int, key: str) -> float:
    """Mean of ``key`` over the training rows logged in (after, upto]: one batch's loss is
    noisy, and rows come every log_every steps."""
    values = [r[key] for s, r in rows.items() if after < s <= upto and key in r]
    return sum(values) / len(values) if values else math.nan


def measure(cfg, data: Path) -> list[dict]:
    """One record per checkpoint: logged metrics and answer accuracy on both splits."""
    trained, evaluated = read_metrics(cfg.run_dir)
    stores = {split: TokenStore(data, split) for split in ("train", "valid")}
    rows_per_step = cfg.train.batch_size * cfg.train.grad_accum  # one process
    windows = stores["train"].num_windows(cfg.data.seq_len)
    records, previous = [], 0
    for ckpt in sorted((cfg.run_dir / CHECKPOINTS).glob("step_*[0-9]")):
        loaded = load_model(ckpt)
        step, tokenizer = loaded.state["step"], loaded.tokenizer()
        acc = {s: answer_accuracy(loaded.model, tokenizer, store) for s, store in stores.items()}
        ev = evaluated.get(step, {})
        records.append({
            "step": step, "epoch": step * rows_per_step / windows,
            "train loss": window_mean(trained, previous, step, "loss"),
            "val loss": ev.get("val_loss", math.nan),
            "train acc": acc["train"], "test acc": acc["valid"],
            "pathway distance": ev.get("pathway_distance", math.nan),
            "pathway consistency": ev.get("pathway_consistency", math.nan),
        })  # fmt: skip
        previous = step
    return records


def table(records: list[dict]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    for r in records:
        cells = [f"{r['step']}", f"{r['epoch']:.0f}", f"{r['train loss']:.4f}",
                 f"{r['val loss']:.4f}", f"{r['train acc']:.3f}", f"{r['test acc']:.3f}",
                 f"{r['pathway distance']:.3f}", f"{r['pathway consistency']:.3f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def first_step(records: list[dict], key: str, level: float) -> int | None:
    return next((r["step"] for r in records if r[key] >= level), None)


def summary(records: list[dict]) -> list[str]:
    """When each accuracy first reached 99%, and how the pathway metrics track test accuracy."""
    fit, grok = first_step(records, "train acc", 0.99), first_step(records, "test acc", 0.99)
    last = records[-1]["step"] if records else 0
    lines = [
        f"- {name} accuracy >= 0.99 " + (f"first at step {at}" if at else f"never by step {last}")
        for name, at in (("train", fit), ("test", grok))
    ]
    if fit is not None and grok is not None:
        lines.append(f"- delay from fitting the training set to generalising: {grok - fit} steps")
    test = np.array([r["test acc"] for r in records])
    for key in ("pathway distance", "pathway consistency"):
        values = np.array([r[key] for r in records])
        ok = np.isfinite(values)
        if ok.sum() >= 3 and test[ok].std() > 0 and values[ok].std() > 0:
            rho = spearman(values[ok], test[ok])
            lines.append(f"- {key}: {values[ok][0]:.3f} -> {values[ok][-1]:.3f} "
                         f"(Spearman with test accuracy over checkpoints: {rho:+.2f})")  # fmt: skip
    return lines


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation (ties broken by order; the curves are long enough for that)."""
    rx, ry = x.argsort().argsort(), y.argsort().argsort()
    return float(np.corrcoef(rx, ry)[0, 1])


def plot(records: list[dict], path: Path, title: str) -> None:
    """Losses, accuracies and pathway metrics against step, on matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    steps = [r["step"] for r in records]
    panels = [
        ("loss", ["train loss", "val loss"]),
        ("answer accuracy", ["train acc", "test acc"]),
        ("pathway distance (lower: shared)", ["pathway distance"]),
    ]
    for ax, (name, keys) in zip(axes, panels):
        for key in keys:
            ax.plot(steps, [r[key] for r in records], label=key, marker=".")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    twin = axes[2].twinx()  # consistency on its own scale, to the right
    twin.plot(steps, [r["pathway consistency"] for r in records], color="C1", marker=".",
              label="pathway consistency (higher: smooth)")  # fmt: skip
    for ax in (axes[0], axes[1]):
        ax.legend(fontsize=8)
    lines = axes[2].get_legend_handles_labels(), twin.get_legend_handles_labels()
    axes[2].legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)


def main() -> None:
    args = parse_args()
    data = prepare_task(args)
    cfg = run_config(args, data)
    start = time.perf_counter()
    train(cfg, resume="auto")  # a finished run is read as it is; a killed one continues
    seconds = time.perf_counter() - start
    records = measure(cfg, data)
    t = cfg.train
    title = (
        f"{args.operation} mod {args.modulus}, train fraction {args.train_fraction:g}, "
        f"wd {t.weight_decay:g}, lr {t.lr:g}, batch {t.batch_size}, {t.max_steps} steps"
    )
    report = [f"## grokking: {title}", "", f"run {cfg.run_dir}; training {seconds:.0f} s", "",
              *table(records), "", *summary(records)]  # fmt: skip
    text = "\n".join(report)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.plot:
        plot(records, args.plot, title)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
