"""MAE pretraining vs none on scikit-learn's real handwritten digits (He et al. 2022; the
single-modality case of papers/multimae.md): does masked autoencoding of 1,259 8x8 images make
features that a linear probe, k-NN and few labels read better than a random encoder's?

Protocol (``configs/mae-digits.yaml``: a 4-layer, 64-wide ViT on 2x2 patches):

- the digits are split once, stratified by class (seed 0): 1,259 train, 179 valid, 359 test;
- the recipe (epochs x learning rate, the grid below) is chosen per seed by the linear probe's
  accuracy on ``valid``; the probe's C and k-NN's k are chosen on ``valid`` too;
- every number is on ``test``, mean ± std over ``--seeds`` training seeds; the random encoder
  is the same architecture at the same seed (``initial_model``), probed the same way;
- few-label: the probe on N training labels (seeded, class-stratified, nested; fixed C = 1).

Run (one CPU thread, about 5 minutes; see BENCHMARKS.md):

    OMP_NUM_THREADS=1 python benchmarks/vision_mae.py --out bench-runs/vision_mae.md

Smoke run: ``--epochs 5 --lrs 2e-3 --seeds 0``.
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
from thrifty.eval.image_probe import probe_encoders
from thrifty.runs import load_model
from thrifty.train.loop import train
from thrifty.train.start import initial_model

CONFIG = Path(__file__).parents[1] / "configs" / "mae-digits.yaml"
SIZES = [10, 20, 50, 100, 200, 500]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("bench-runs/vision_mae"))
    p.add_argument("--out", type=Path, default=Path("bench-runs/vision_mae.md"))
    p.add_argument("--epochs", type=int, nargs="+", default=[30, 100])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--label-seeds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(1)
    data = a.work / "digits"
    if not (data / "manifest.json").is_file():
        prepare_images("digits", data, seed=0)
    start = time.perf_counter()
    rows = []
    for seed in a.seeds:
        tried = []
        for epochs in a.epochs:
            for lr in a.lrs:
                name = f"mae-s{seed}-e{epochs}-lr{lr:g}"
                cfg = load_config(CONFIG, [
                    f"name={name}", f"data.path={data}", f"runs_dir={a.work / 'runs'}",
                    f"train.seed={seed}", f"train.max_epochs={epochs}", f"train.lr={lr}",
                    "train.threads=1", "train.eval_every=0", "train.checkpoint_every=0",
                ])  # fmt: skip
                run_dir = cfg.run_dir
                if not (run_dir / "checkpoints" / "latest").is_file():
                    train(cfg)
                loaded = load_model(run_dir)
                result = probe_encoders({"pretrained": loaded.model}, data, SIZES, [0])
                tried.append((result["arms"]["pretrained"]["linear"]["valid"], epochs, lr, run_dir))
                print(f"seed {seed} epochs {epochs} lr {lr:g}: valid linear {tried[-1][0]:.3f}")
        _, epochs, lr, run_dir = max(tried, key=lambda t: t[0])
        loaded = load_model(run_dir)
        encoders = {"pretrained": loaded.model, "random_init": initial_model(loaded.cfg)}
        result = probe_encoders(encoders, data, SIZES, list(range(a.label_seeds)))
        rows.append({"seed": seed, "epochs": epochs, "lr": lr, **result})
    minutes = (time.perf_counter() - start) / 60
    a.out.parent.mkdir(parents=True, exist_ok=True)
    (a.work / "results.json").write_text(json.dumps(rows, indent=2))
    a.out.write_text(render(rows, a, minutes))
    print(a.out.read_text())


def mean_std(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def render(rows: list[dict], a, minutes: float) -> str:
    chosen = ", ".join(f"{r['epochs']} ep / {r['lr']:g}" for r in rows)
    lines = [
        f"Seeds {a.seeds}; grid epochs {a.epochs} x lr {a.lrs}, chosen per seed on valid "
        f"({chosen}); {minutes:.1f} min.",
        "",
        "| encoder | linear probe (test) | k-NN (test) |",
        "|---|---|---|",
    ]
    for arm in ("pretrained", "random_init"):
        lin = mean_std([r["arms"][arm]["linear"]["test"] for r in rows])
        knn = mean_std([r["arms"][arm]["knn"]["test"] for r in rows])
        lines.append(f"| {'MAE' if arm == 'pretrained' else 'random init'} | {lin} | {knn} |")
    lines += ["", "| labels | " + " | ".join(map(str, SIZES)) + " |",
              "|---" * (len(SIZES) + 1) + "|"]  # fmt: skip
    for arm in ("pretrained", "random_init"):
        cells = [mean_std([r["few_labels"][arm][str(n)]["mean"] for r in rows]) for n in SIZES]
        lines.append(
            f"| {'MAE' if arm == 'pretrained' else 'random init'} | " + " | ".join(cells) + " |"
        )
    factors = [r["labels_saved"]["factor"] for r in rows]
    lines += ["", f"Labels saved by pretraining (per seed): {factors}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
