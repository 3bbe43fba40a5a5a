"""The summary of a reference run (``benchmarks/gpu_reference.sh``): speed and every score.

Reads the run's ``metrics.jsonl`` (tokens/s and MFU of the training rows, the second half of
them so compilation and warm-up stay out) and the result of every task ``thrifty eval --task
all`` wrote under ``<run>/eval/``, and writes one markdown table and its JSON beside it::

    python benchmarks/gpu_reference_summary.py RUN --scale gpu --train-seconds 300 --out summary.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import torch

from thrifty.jsonl import read_jsonl


def summarise(run: Path, scale: str, train_seconds: float) -> dict:
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if "tokens_per_s" in r]
    if not rows:
        raise SystemExit(f"{run / 'metrics.jsonl'} has no training rows")
    steady = rows[len(rows) // 2 :]
    scores = {}
    for path in sorted((run / "eval").glob("*.json")):
        result = json.loads(path.read_text())  # every task's headline is its "score"
        if isinstance(result.get("score"), int | float):
            scores[path.stem] = {"score": result["score"], "items": result.get("n_items")}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
    return {
        "scale": scale,
        "device": device or platform.machine(),
        "torch": torch.__version__,
        "steps": rows[-1]["step"],
        "words": rows[-1]["words"],
        "epochs": rows[-1]["epoch"],
        "final_loss": rows[-1]["loss"],
        "train_seconds": train_seconds,
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
        "mfu": statistics.median(r["mfu"] for r in steady),
        "scores": scores,
    }


def markdown(s: dict) -> str:
    lines = [
        f"Reference run ({s['scale']} scale) on {s['device']}, torch {s['torch']}: "
        f"{s['steps']} steps, {s['words']:,.0f} words ({s['epochs']:.2f} epochs), "
        f"training {s['train_seconds']:.0f} s wall, final loss {s['final_loss']:.3f}.",
        "",
        f"Training: {s['tokens_per_s']:,.0f} tokens/s, MFU {s['mfu']:.3f} (medians over the "
        "second half of the training rows).",
        "",
        "| task (backend) | score | items |",
        "|---|---:|---:|",
    ]
    for task, score in s["scores"].items():
        lines.append(f"| {task} | {score['score']:.3f} | {score['items']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="the reference run's folder")
    p.add_argument("--scale", default="gpu", choices=("gpu", "cpu"))
    p.add_argument("--train-seconds", type=float, required=True)
    p.add_argument("--out", type=Path, required=True, help="summary .md (and .json beside it)")
    args = p.parse_args(argv)
    summary = summarise(args.run, args.scale, args.train_seconds)
    args.out.write_text(markdown(summary))
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
