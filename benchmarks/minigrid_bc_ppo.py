"""MiniGrid DoorKey-5x5: PPO from scratch vs behaviour-cloned + PPO vs concurrent BC, with 2 / 10
/ 50 expert demonstrations and 50 noisy ones (the small-scale check of Andres et al. 2023,
``papers/offline_il_pretraining.md``; its quality vs diversity question in small).

For each demonstration set: `thrifty demos` (BFS planner; noisy: a random action with
probability 0.3, then replan), `thrifty train configs/bc-doorkey.yaml` per seed, then
`thrifty ppo` per arm and seed within the same environment-step budget, success rate on 64
held-out levels every ``--eval-every`` steps. Prints a table of success before any online step
and at the end, the "environment steps saved" factor at ``--target`` success against scratch
PPO, and draws ``curves.png`` (mean and range over seeds).

    python benchmarks/minigrid_bc_ppo.py --out bench-runs/minigrid
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DEMOS = {  # name: thrifty demos options
    "expert-2": ["--episodes", "2"],
    "expert-10": ["--episodes", "10"],
    "expert-50": ["--episodes", "50"],
    "noisy-50": ["--episodes", "50", "--noise", "0.3"],
}
ARMS = {  # name: (demonstrations, how they are used)
    "scratch": (None, None),
    "bc-init expert-2": ("expert-2", "init"),
    "bc-init expert-10": ("expert-10", "init"),
    "bc-init expert-50": ("expert-50", "init"),
    "bc-init noisy-50": ("noisy-50", "init"),
    "concurrent expert-10": ("expert-10", "concurrent"),
}


def thrifty(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "thrifty.cli.main", *args], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench-runs/minigrid"))
    p.add_argument("--steps", type=int, default=30_720, help="environment steps per PPO run")
    p.add_argument("--eval-every", type=int, default=3072)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--target", type=float, default=0.8, help="success rate for steps saved")
    args = p.parse_args()
    started = time.perf_counter()
    for name, options in DEMOS.items():
        data = args.out / "data" / name
        if not (data / "manifest.json").exists():
            thrifty("demos", "--out", str(data), "--valid-episodes", "10", "--seed", "0",
                    "--quiet", *options)  # fmt: skip
    curves: dict[str, list[list[dict]]] = {}
    for arm, (demos, use) in ARMS.items():
        curves[arm] = []
        for seed in range(args.seeds):
            out = args.out / "ppo" / arm.replace(" ", "_") / f"seed{seed}"
            if not (out / "result.json").exists():
                thrifty("ppo", *arm_options(args, demos, use, seed), "--out", str(out),
                        "--steps", str(args.steps), "--eval-every", str(args.eval_every),
                        "--seed", str(seed))  # fmt: skip
            rows = (out / "curve.jsonl").read_text().splitlines()
            curves[arm].append([json.loads(r) for r in rows])
    (args.out / "curves.json").write_text(json.dumps(curves) + "\n")
    draw(curves, args.out / "curves.png")
    print(report(curves, args, time.perf_counter() - started))


def arm_options(args, demos: str | None, use: str | None, seed: int) -> list[str]:
    if demos is None:
        return ["--config", "configs/bc-doorkey.yaml"]
    data = args.out / "data" / demos
    if use == "concurrent":
        return ["--config", "configs/bc-doorkey.yaml", "--bc-data", str(data)]
    runs = args.out / "bc" / f"seed{seed}"
    run = runs / f"bc-{demos}"
    if not (run / "ledger.json").exists():
        thrifty("train", "configs/bc-doorkey.yaml", f"data.path={data}", f"runs_dir={runs}",
                f"name=bc-{demos}", f"train.seed={seed}")  # fmt: skip
    return ["--init", str(run)]


def report(curves: dict, args: argparse.Namespace, seconds: float) -> str:
    from thrifty.analysis.steps_saved import steps_saved

    lines = [f"Success rate on 64 held-out levels (mean over {args.seeds} seeds; "
             f"budget {args.steps:,} environment steps)", "",
             f"| arm | before any step | final | steps saved at {args.target:.0%} (95% CI) |",
             "|---|---|---|---|"]  # fmt: skip
    for arm, runs in curves.items():
        first = sum(r[0]["success_rate"] for r in runs) / len(runs)
        final = sum(r[-1]["success_rate"] for r in runs) / len(runs)
        saved = "—"
        if arm != "scratch":
            s = steps_saved(curves["scratch"], runs, args.target)
            if s["at_once"]:
                saved = "met before any online step"
            elif s["determined"]:
                bound = "≥ " if s["lower_bound"] else ""
                saved = f"{bound}{s['factor']:.1f}× ({s['ci95'][0]:.1f}–{s['ci95'][1]:.1f})"
            else:
                saved = f"reached by only {s['method_reached']} of {len(runs)} seeds"
        lines.append(f"| {arm} | {first:.2f} | {final:.2f} | {saved} |")
    lines += ["", f"({seconds / 60:.1f} min in all)"]
    return "\n".join(lines)


def draw(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    for arm, runs in curves.items():
        steps = [r["env_steps"] for r in runs[0]]
        values = np.array([[r["success_rate"] for r in run] for run in runs])
        ax.plot(steps, values.mean(0), label=arm)
        ax.fill_between(steps, values.min(0), values.max(0), alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success rate (held-out levels)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
