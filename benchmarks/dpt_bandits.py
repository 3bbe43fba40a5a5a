"""DPT on 5-armed Gaussian bandits: offline accuracy by context size and online regret against
UCB1, Thompson sampling and uniform pulls (the small-scale check of Lee et al. 2023,
``papers/dpt.md``).

``--train-seeds`` `thrifty train` runs (``train.seed`` 0, 1, ...) of
``configs/dpt-bandit.yaml`` (2 layers, width 32) on ``--tasks`` tasks of 50 uniformly random
pulls (arm means from U[0, 1], noise σ = 0.3), then `thrifty bandit-eval` of each on fresh
tasks over ``--seeds`` seeds: online, the policy samples from its prediction as its own history
grows; offline, it acts once with the argmax from the first j pulls of a uniformly random
dataset, against LCB and the greedy empirical best.

    python benchmarks/dpt_bandits.py --out bench-runs/dpt_bandits
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def thrifty(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "thrifty.cli.main", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench-runs/dpt_bandits"))
    p.add_argument("--tasks", type=int, default=50_000, help="pretraining tasks")
    p.add_argument("--steps", type=int, default=3000, help="training steps")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the evaluation tasks")
    p.add_argument("--eval-tasks", type=int, default=200, help="evaluation tasks per seed")
    p.add_argument("--train-seeds", type=int, default=2, help="training runs (train.seed)")
    args = p.parse_args()
    data, runs = args.out / "bandits-5", args.out / "runs"
    started = time.perf_counter()
    if not (data / "manifest.json").exists():
        thrifty("bandit-task", "--out", str(data), "--arms", "5", "--horizon", "50",
                "--tasks", str(args.tasks), "--seed", "0", "--quiet")  # fmt: skip
    results = []
    for seed in range(args.train_seeds):
        run = runs / f"dpt-bandit-seed{seed}"
        if not (run / "ledger.json").exists():
            thrifty("train", "configs/dpt-bandit.yaml", f"data.path={data}", f"runs_dir={runs}",
                    f"name={run.name}", f"train.seed={seed}", f"train.max_steps={args.steps}",
                    "train.threads=1")  # fmt: skip
        out = run / "eval" / "bandit.json"
        if not out.exists():
            thrifty("bandit-eval", str(run), "--seeds", str(args.seeds), "--tasks",
                    str(args.eval_tasks), "--out", str(out))  # fmt: skip
        results.append(json.loads(out.read_text()))
    print(report(merge(results), args, time.perf_counter() - started))


def merge(results: list[dict]) -> dict:
    """The first result's baselines (the same fresh tasks for every run) and one DPT row per
    training seed."""
    merged = {**results[0], "online": {}, "offline": {}}
    for part in ("online", "offline"):
        for seed, result in enumerate(results):
            merged[part][f"dpt (train seed {seed})"] = result[part]["dpt"]
        merged[part] |= {k: v for k, v in results[0][part].items() if k != "dpt"}
    return merged


def report(result: dict, args: argparse.Namespace, seconds: float) -> str:
    steps = [s for s in (1, 5, 10, 25, 50) if s <= result["horizon"]]
    lines = [f"Online cumulative regret (mean ± std over {result['seeds']} seeds of "
             f"{result['tasks_per_seed']} tasks)", "",
             "| algorithm | " + " | ".join(f"t = {s}" for s in steps) + " |",
             "|---|" + "---|" * len(steps)]  # fmt: skip
    for name, c in result["online"].items():
        cells = [f"{c['mean'][s - 1]:.2f} ± {c['std'][s - 1]:.2f}" for s in steps]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    final = {name: c["mean"][-1] for name, c in result["online"].items()}
    for name in (n for n in final if n.startswith("dpt")):
        lines += ["", f"{name} / Thompson final regret: {final[name] / final['thompson']:.2f}x; "
                  f"/ uniform: {final[name] / final['uniform']:.2f}x"]  # fmt: skip
    lines.append("")
    sizes = list(next(iter(result["offline"].values())))
    lines += ["Offline: accuracy (optimal arm chosen) from j uniformly random pulls", "",
              "| algorithm | " + " | ".join(f"j = {s}" for s in sizes) + " |",
              "|---|" + "---|" * len(sizes)]  # fmt: skip
    for name, by_size in result["offline"].items():
        cells = [f"{by_size[s]['accuracy']:.3f}" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Offline suboptimality (μ* − μ of the choice)", "",
              "| algorithm | " + " | ".join(f"j = {s}" for s in sizes) + " |",
              "|---|" + "---|" * len(sizes)]  # fmt: skip
    for name, by_size in result["offline"].items():
        cells = [f"{by_size[s]['suboptimality']:.3f}" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"{args.tasks:,} tasks, {args.steps:,} steps, {args.train_seeds} training "
              f"runs: {seconds:.0f} s in all"]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
