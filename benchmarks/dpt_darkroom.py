"""DPT in Dark Room: online return per episode against the random behaviour policy, the
empirical baseline and the oracle, in rooms whose goals were held out of training (Lee et al.
2023, section 5.2; ``papers/dpt.md``), shrunk to a 5×5 room so that it runs on a CPU.

One dataset (``thrifty darkroom-task``: 5×5, episodes of 25 steps from the corner, contexts of
4 random episodes, 5 of the 25 goal cells held out), then ``--train-seeds`` `thrifty train`
runs of ``configs/dpt-darkroom.yaml`` (2 layers, width 48) differing only in ``train.seed``,
each deployed by `thrifty darkroom-eval` in fresh held-out-goal tasks of ``--seeds`` seeds.
Intervals are 95% Student-t over every (training seed, evaluation seed) pair.

    OMP_NUM_THREADS=1 python benchmarks/dpt_darkroom.py --out bench-runs/dpt_darkroom
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from thrifty.eval.darkroom_deploy import summary


def thrifty(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "thrifty.cli.main", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench-runs/dpt_darkroom"))
    p.add_argument("--tasks", type=int, default=50_000, help="pretraining tasks")
    p.add_argument("--steps", type=int, default=1500, help="training steps")
    p.add_argument("--train-seeds", type=int, default=2, help="training runs (train.seed)")
    p.add_argument("--seeds", type=int, default=5, help="seeds of the evaluation tasks")
    p.add_argument("--eval-tasks", type=int, default=100, help="evaluation tasks per seed")
    args = p.parse_args()
    data, runs = args.out / "darkroom-5", args.out / "runs"
    started = time.perf_counter()
    if not (data / "manifest.json").exists():
        thrifty("darkroom-task", "--out", str(data), "--grid", "5", "--episodes", "4",
                "--holdout-goals", "5", "--tasks", str(args.tasks), "--seed", "0",
                "--quiet")  # fmt: skip
    results = []
    for seed in range(args.train_seeds):
        run = runs / f"dpt-darkroom-{seed}"
        if not (run / "ledger.json").exists():
            thrifty("train", "configs/dpt-darkroom.yaml", f"data.path={data}",
                    f"runs_dir={runs}", f"name={run.name}", f"train.seed={seed}",
                    f"train.max_steps={args.steps}", "train.threads=1")  # fmt: skip
        out = args.out / f"darkroom-{seed}.json"
        thrifty("darkroom-eval", str(run), "--seeds", str(args.seeds), "--tasks",
                str(args.eval_tasks), "--out", str(out))  # fmt: skip
        results.append(json.loads(out.read_text()))
    print(report(results, args, time.perf_counter() - started))


def pooled(results: list[dict], mode: str, name: str) -> dict:
    """``summary`` over every (training seed, evaluation seed) pair."""
    return summary([row for r in results for row in r[mode][name]["per_seed"]])


def report(results: list[dict], args: argparse.Namespace, seconds: float) -> str:
    first = results[0]
    E, pairs = first["episodes"], len(results) * first["seeds"]
    lines = [f"Online return per episode (mean ± 95% CI over {len(results)} training seeds × "
             f"{first['seeds']} evaluation seeds of {first['tasks_per_seed']} tasks, "
             f"{first['goals']} goals; an episode is {first['horizon']} steps)", "",
             "| policy | " + " | ".join(f"episode {e}" for e in range(1, E + 1)) + " |",
             "|---|" + "---|" * E]  # fmt: skip
    for name in first["online"]:
        s = pooled(results, "online", name)
        cells = [f"{m:.2f} ± {c:.2f}" for m, c in zip(s["mean"], s["ci95"], strict=True)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "DPT by training seed (mean over evaluation seeds):", "",
              "| training seed | " + " | ".join(f"episode {e}" for e in range(1, E + 1)) + " |",
              "|---|" + "---|" * E]  # fmt: skip
    for seed, r in enumerate(results):
        lines.append(f"| {seed} | " + " | ".join(f"{m:.2f}" for m in r["online"]["dpt"]["mean"]))
        lines[-1] += " |"
    lines += ["", f"Offline return (argmax from a fixed dataset of {first['settings']['episodes']} "
              "random episodes), "
              f"{pairs} pairs:", "", "| policy | return |", "|---|---|"]  # fmt: skip
    for name in first["offline"]:
        s = pooled(results, "offline", name)
        lines.append(f"| {name} | {s['mean']:.2f} ± {s['ci95']:.2f} |")
    sizes = list(first["offline_accuracy"]["dpt"])
    lines += ["", "Offline accuracy of the action at a random query cell after j transitions:",
              "", "| policy | " + " | ".join(f"j = {j}" for j in sizes) + " |",
              "|---|" + "---|" * len(sizes)]  # fmt: skip
    for name in first["offline_accuracy"]:
        mean = [sum(r["offline_accuracy"][name][j] for r in results) / len(results) for j in sizes]
        lines.append(f"| {name} | " + " | ".join(f"{m:.3f}" for m in mean) + " |")
    lines += ["", f"{args.tasks:,} tasks, {args.steps:,} steps per run: {seconds:.0f} s in all"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
