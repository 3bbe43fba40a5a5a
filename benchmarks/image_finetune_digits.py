"""Fine-tuning a pretrained MAE digits encoder end to end vs its random-init twin, under the
label-efficiency protocol (``thrifty probe --finetune``; ``thrifty.eval.image_finetune``).

Protocol:

- the digits are split once, stratified by class (seed 0): 1,259 train, 179 valid, 359 test;
- the encoder is ``configs/mae-digits.yaml`` trained at training seed 0 with the recipe the MAE
  benchmark chose on valid for every seed (100 epochs at lr 1e-3; BENCHMARKS.md, "Vision: MAE");
- for N in ``--sizes`` and each label seed, both encoders (the random one: same architecture,
  same seed, untrained) get a linear head on mean-pooled features and are fine-tuned end to
  end on the same nested, class-stratified N training labels; early stopping and each arm's lr
  (from ``--lrs``) are chosen on a stratified share of those N (below two per class: on the N
  themselves); accuracy on the 359 test digits;
- beside it, the frozen-feature few-label probe (logistic regression, C = 1) of the same two
  encoders on the same N-label samples, for comparison.

Run (one CPU thread, about 10 minutes with the MAE pretraining; see BENCHMARKS.md):

    OMP_NUM_THREADS=1 python benchmarks/image_finetune_digits.py --out bench-runs/image_ft.md

Smoke run: ``--epochs 2 --sizes 10,20 --seeds 0 --max-epochs 2``.
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
from thrifty.eval.image_finetune import (
    DEFAULT_LRS,
    RESULT_FILE,
    default_settings,
    finetune_images,
    write_result,
)
from thrifty.eval.image_probe import few_label_accuracy, split_features
from thrifty.runs import load_model
from thrifty.train.loop import train
from thrifty.train.start import initial_model

CONFIG = Path(__file__).parents[1] / "configs" / "mae-digits.yaml"
NAMES = {"pretrained": "MAE", "random_init": "random init"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("bench-runs/image_finetune"))
    p.add_argument("--out", type=Path, default=Path("bench-runs/image_finetune.md"))
    p.add_argument("--epochs", type=int, default=100, help="MAE pretraining epochs")
    p.add_argument("--lr", type=float, default=1e-3, help="MAE pretraining lr")
    p.add_argument("--sizes", default="10,20,50,100,200")
    p.add_argument("--seeds", default="0,1,2", help="label seeds")
    p.add_argument("--lrs", default=",".join(f"{lr:g}" for lr in DEFAULT_LRS))
    p.add_argument("--max-epochs", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(1)
    sizes, seeds = [int(n) for n in a.sizes.split(",")], [int(s) for s in a.seeds.split(",")]
    data = a.work / "digits"
    if not (data / "manifest.json").is_file():
        prepare_images("digits", data, seed=0)
    start = time.perf_counter()
    cfg = load_config(CONFIG, [
        "name=mae", f"data.path={data}", f"runs_dir={a.work / 'runs'}", "train.seed=0",
        f"train.max_epochs={a.epochs}", f"train.lr={a.lr}", "train.threads=1",
        "train.eval_every=0", "train.checkpoint_every=0",
    ])  # fmt: skip
    if not (cfg.run_dir / "checkpoints" / "latest").is_file():
        train(cfg)
    pretrain_minutes = (time.perf_counter() - start) / 60
    loaded = load_model(cfg.run_dir)
    random_init = initial_model(loaded.cfg)
    start = time.perf_counter()
    result = finetune_images(
        loaded, random_init, data, sizes=sizes, seeds=seeds,
        lrs=[float(x) for x in a.lrs.split(",")], settings=default_settings(a.max_epochs),
    )  # fmt: skip
    finetune_minutes = (time.perf_counter() - start) / 60
    write_result(result, cfg.run_dir / "eval" / RESULT_FILE)
    frozen = {}
    for arm, model in (("pretrained", loaded.model), ("random_init", random_init)):
        features = {s: split_features(model, data, s) for s in ("train", "test")}
        frozen[arm] = few_label_accuracy(features, sizes, seeds)
    (a.work / "frozen_few_labels.json").write_text(json.dumps(frozen, indent=2))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(render(result, frozen, a, pretrain_minutes, finetune_minutes))
    print(a.out.read_text())


def mean_std(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def render(result: dict, frozen: dict, a, pretrain: float, finetune: float) -> str:
    sizes = result["sizes"]
    lines = [
        f"Label seeds {result['seeds']}; lr grid {result['settings']['lrs']}; at most "
        f"{result['settings']['max_epochs']} epochs (patience {result['settings']['patience']}); "
        f"MAE pretraining {pretrain:.1f} min, fine-tuning {finetune:.1f} min.",
        "",
        "| test accuracy, N labels | " + " | ".join(map(str, sizes)) + " |",
        "|---" * (len(sizes) + 1) + "|",
    ]
    for arm in ("pretrained", "random_init"):
        cells = [mean_std(result["arms"][arm][str(n)]) for n in sizes]
        lines.append(f"| {NAMES[arm]}, fine-tuned | " + " | ".join(cells) + " |")
    for arm in ("pretrained", "random_init"):
        cells = [mean_std(frozen[arm][str(n)]) for n in sizes]
        lines.append(f"| {NAMES[arm]}, frozen + probe | " + " | ".join(cells) + " |")
    chosen = {arm: {} for arm in ("pretrained", "random_init")}
    for row in result["runs"]:
        chosen[row["arm"]].setdefault(row["n"], []).append(f"{row['lr']:g}")
    lines.append("")
    for arm, by_n in chosen.items():
        text = "; ".join(f"N={n}: {', '.join(lrs)}" for n, lrs in sorted(by_n.items()))
        lines.append(f"lr chosen ({NAMES[arm]}, per seed): {text}")
    saved = result["labels_saved"]
    factor = "n/a" if saved["factor"] is None else f"{saved['factor']:.2f}x"
    lines += ["", f"Labels saved by pretraining (target {saved['target']:.3f}, the random-init "
              f"arm's best mean): pretrained {saved['pretrained']}, random init "
              f"{saved['random_init']}, factor {factor}"]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
