"""ScaleKD on real digits (papers/scalekd.md, small-scale check): does a frozen ViT teacher
make a CNN student classify better, and do the cross-attention projector's feature mimicking
and the teacher-head ("parameter perception") logits add to plain logit KD?

Protocol:

- ``images:digits``: scikit-learn's 1,797 real 8x8 digits (stratified, seed 0: 1,259 train /
  179 valid / 359 test);
- teacher: one ``classify`` ViT (``configs/classify-digits.yaml``: 4 layers, 64 wide, 2x2
  patches, 16 tokens an image), trained once (seed 0) and frozen;
- students: a 3-layer CNN (``configs/scalekd-digits.yaml``: conv stem of 32, 32, 64 channels,
  one stride-2 layer, so a 4x4 map; no transformer blocks; global average pool + linear head),
  and a small CNN (2 layers of 8 and 16 channels, a 2x2 map) that CE alone leaves below the
  teacher, trained at one fixed recipe (the grid's longest, highest-lr one);
- the card's four arms, each one setting of the ``scalekd`` weights: CE only, + logit KD,
  + dual-view feature mimicking through the projector, + teacher-head logits (all on);
- per arm and seed the recipe (``--epochs`` x ``--lrs``) is chosen on the student's own head
  accuracy on ``valid`` (ties: the shorter, then the lower); every reported number is that
  head's accuracy on ``test``, mean ± std over ``--seeds`` (the student's init and batch
  order; one teacher for all).

Run (one CPU thread, about 12 minutes; see BENCHMARKS.md):

    OMP_NUM_THREADS=1 python benchmarks/scalekd_digits.py --out bench-runs/scalekd.md

Smoke run: ``--epochs 2 --teacher-epochs 2 --lrs 2e-3 --seeds 0``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from thrifty.config import load_config
from thrifty.data.images import prepare_images
from thrifty.eval.image_classify import head_accuracy
from thrifty.runs import load_model
from thrifty.train.loop import train

CONFIGS = Path(__file__).parents[1] / "configs"
OFF = ["objective.kd_weight=0", "objective.feature_weight=0", "objective.perception_weight=0"]
ARMS = {  # the card's comparison, in its order
    "CE": OFF,
    "+ logit KD": ["objective.feature_weight=0", "objective.perception_weight=0"],
    "+ feature (CAP, two views)": ["objective.perception_weight=0"],
    "+ teacher head (ScaleKD)": [],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("bench-runs/scalekd"))
    p.add_argument("--out", type=Path, default=Path("bench-runs/scalekd.md"))
    p.add_argument("--teacher-epochs", type=int, default=30)
    p.add_argument("--epochs", type=int, nargs="+", default=[10, 30])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = p.parse_args()
    torch.set_num_threads(1)
    data = a.work / "digits"
    if not (data / "manifest.json").is_file():
        prepare_images("digits", data)
    start = time.perf_counter()
    teacher = run("classify-digits", [f"train.max_epochs={a.teacher_epochs}"], a, data)
    loaded = load_model(teacher)
    teacher_test = head_accuracy(loaded, data, "test")
    a.teacher_lr = loaded.cfg.train.lr
    print(f"teacher: test accuracy {teacher_test:.3f}")
    results = {"teacher_test": teacher_test}
    text = ""
    for student, (overrides, epochs, lrs) in students(a).items():
        rows, grid = compare(a, data, teacher, student, overrides, epochs, lrs)
        results[student] = {"rows": rows, "grid": grid}
        text += render(student, rows, epochs, lrs) + render_grid(grid, epochs, lrs)
    minutes = (time.perf_counter() - start) / 60
    head = (
        f"Seeds {a.seeds}; one ViT teacher, {a.teacher_epochs} epochs at lr {a.teacher_lr:g}: "
        f"test accuracy {teacher_test:.3f}; {minutes:.1f} min.\n"
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    (a.work / "results.json").write_text(json.dumps(results, indent=1))
    a.out.write_text(head + text)
    print(a.out.read_text())


def students(a) -> dict[str, tuple[list[str], list[int], list[float]]]:
    """Each student: its overrides of configs/scalekd-digits.yaml and its recipe grid. The
    small one (2 conv layers of 8 channels, a 2x2 map of 16) is below its teacher with CE
    alone, the setting distillation is for; it gets one fixed recipe to keep the run short."""
    small = ["model.d_model=16", "model.stem.width=8", "model.stem.depth=2",
             "model.stem.downsample=2"]  # fmt: skip
    return {
        "3-layer CNN (32, 32, 64 channels; 4x4 map)": ([], a.epochs, a.lrs),
        "small CNN (8, 16 channels; 2x2 map)": (small, [max(a.epochs)], [max(a.lrs)]),
    }


def compare(a, data, teacher, student, overrides, epochs_grid, lrs) -> tuple[list, list]:
    """The four arms for one student over the seeds: (the recipe chosen on valid per arm and
    seed, every recipe's test accuracy)."""
    rows, grid = [], []
    prefix = "small-" if overrides else ""
    for seed in a.seeds:
        for arm, weights in ARMS.items():
            tried = []
            for epochs in epochs_grid:
                for lr in lrs:
                    name = f"{prefix}{arm_key(arm)}-s{seed}-e{epochs}-lr{lr:g}"
                    extra = [*overrides, *weights, f"objective.teacher={teacher}",
                             f"train.seed={seed}", f"train.lr={lr}",
                             f"train.max_epochs={epochs}"]  # fmt: skip
                    loaded = load_model(run("scalekd-digits", extra, a, data, name))
                    tried.append((head_accuracy(loaded, data, "valid"), epochs, lr, loaded))
                    print(f"{student} seed {seed} {arm} {epochs} ep lr {lr:g}: valid "
                          f"{tried[-1][0]:.3f}")  # fmt: skip
            for _, e, r, run_model in tried:
                test = head_accuracy(run_model, data, "test")
                grid.append({"seed": seed, "arm": arm, "epochs": e, "lr": r, "test": test})
            valid, epochs, lr, loaded = max(tried, key=lambda t: t[0])
            test = head_accuracy(loaded, data, "test")
            rows.append({"seed": seed, "arm": arm, "epochs": epochs, "lr": lr, "valid": valid,
                         "test": test})  # fmt: skip
    return rows, grid


def arm_key(arm: str) -> str:
    return {"CE": "ce", "+ logit KD": "kd", "+ feature (CAP, two views)": "feature"}.get(
        arm, "scalekd"
    )


def run(config: str, extra: list[str], a, data: Path, name: str | None = None) -> Path:
    """The run folder of one config, trained unless it is already there."""
    cfg = load_config(CONFIGS / f"{config}.yaml", [
        f"name={name or config}", f"data.path={data}", f"runs_dir={a.work / 'runs'}",
        "train.threads=1", "train.eval_every=0", *extra,
    ])  # fmt: skip
    if not (cfg.run_dir / "checkpoints" / "latest").is_file():
        train(cfg)
    return cfg.run_dir


def mean_std(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def render(student: str, rows: list[dict], epochs: list[int], lrs: list[float]) -> str:
    lines = [
        "",
        f"Student: {student}; recipe from epochs {epochs} x lr {lrs}, chosen per arm and seed "
        "on valid.",
        "",
        "| student arm | test accuracy | per seed | valid (chosen) | recipe (epochs / lr) |",
        "|---|---|---|---|---|",
    ]
    for arm in ARMS:
        of = [r for r in rows if r["arm"] == arm]
        per_seed = ", ".join(f"{r['test']:.3f}" for r in of)
        valid = mean_std([r["valid"] for r in of])
        recipes = ", ".join(f"{r['epochs']} / {r['lr']:g}" for r in of)
        test = mean_std([r["test"] for r in of])
        lines.append(f"| {arm} | {test} | {per_seed} | {valid} | {recipes} |")
    return "\n".join(lines) + "\n"


def render_grid(grid: list[dict], epochs: list[int], lrs: list[float]) -> str:
    """Test accuracy of every arm at every recipe, mean ± std over seeds: the comparison
    without the noise of choosing a recipe on 179 valid images."""
    recipes = [(e, r) for e in epochs for r in lrs]
    if len(recipes) == 1:
        return ""
    lines = [
        "",
        "Every recipe, test accuracy (mean ± std over seeds):",
        "",
        "| student arm | " + " | ".join(f"{e} ep / {r:g}" for e, r in recipes) + " |",
        "|---|" + "---|" * len(recipes),
    ]
    for arm in ARMS:
        cells = []
        for e, r in recipes:
            of = [g["test"] for g in grid if g["arm"] == arm and (g["epochs"], g["lr"]) == (e, r)]
            cells.append(mean_std(of))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
