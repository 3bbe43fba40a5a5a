"""SoftCon vs SimCLR on multi-label digit mosaics (papers/softcon.md): do soft contrastive
targets from label overlap (Jaccard of the multi-hot sets) give an encoder whose frozen
features a multi-label linear probe reads better (higher test mAP) than SimCLR's one positive,
at equal steps?

Protocol (``configs/softcon-mosaic.yaml``: a 4-layer, 64-wide ViT on 4x4 patches of 16x16
mosaics):

- the 1,797 digits are split once (stratified, seed 0), then each split's 2x2 mosaics are
  composed from its own digits: 1,259 train, 179 valid, 359 test mosaics, 2-4 classes each;
- both objectives get the same recipe grid (``--epochs`` x ``--lrs``), chosen per seed and
  objective by the probe's mAP on ``valid``; the probe's C is chosen on valid too;
- every number is test mAP (macro), mean ± std over ``--seeds`` training seeds, beside a
  randomly initialised encoder of the same architecture and seed and the chance level;
- SoftCon reads the train mosaics' multi-hot targets while pretraining (the paper's free
  land-cover labels); SimCLR reads no labels. The probe reads the train targets for both.

Run (one CPU thread, about 5 minutes; see BENCHMARKS.md):

    OMP_NUM_THREADS=1 python benchmarks/softcon_vs_simclr.py --out bench-runs/softcon.md

Smoke run: ``--epochs 2 --lrs 2e-3 --seeds 0``.
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
from thrifty.eval.multilabel_probe import probe_multilabel
from thrifty.runs import load_model
from thrifty.train.loop import train
from thrifty.train.start import initial_model

CONFIG = Path(__file__).parents[1] / "configs" / "softcon-mosaic.yaml"
ARMS = ("softcon", "simclr")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("bench-runs/softcon"))
    p.add_argument("--out", type=Path, default=Path("bench-runs/softcon.md"))
    p.add_argument("--epochs", type=int, nargs="+", default=[20])
    p.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = p.parse_args()
    torch.set_num_threads(1)
    data = a.work / "mosaic"
    if not (data / "manifest.json").is_file():
        prepare_images("mosaic", data, seed=0)
    start = time.perf_counter()
    rows = []
    for seed in a.seeds:
        for arm in ARMS:
            tried = []
            for epochs in a.epochs:
                for lr in a.lrs:
                    run_dir = pretrain(a, data, arm, seed, epochs, lr)
                    result = probe_multilabel({"pretrained": load_model(run_dir).model}, data)
                    tried.append((result["arms"]["pretrained"]["valid"], epochs, lr, result))
                    print(
                        f"seed {seed} {arm} epochs {epochs} lr {lr:g}: valid mAP {tried[-1][0]:.3f}"
                    )
            _, epochs, lr, result = max(tried, key=lambda t: t[0])
            rows.append({"seed": seed, "arm": arm, "epochs": epochs, "lr": lr, **result})
        loaded = load_model(pretrain(a, data, ARMS[0], seed, a.epochs[0], a.lrs[0]))
        result = probe_multilabel({"random_init": initial_model(loaded.cfg)}, data)
        rows.append({"seed": seed, "arm": "random_init", **result})
    minutes = (time.perf_counter() - start) / 60
    a.out.parent.mkdir(parents=True, exist_ok=True)
    (a.work / "results.json").write_text(json.dumps(rows, indent=2))
    a.out.write_text(render(rows, a, minutes))
    print(a.out.read_text())


def pretrain(a, data: Path, arm: str, seed: int, epochs: int, lr: float) -> Path:
    """The run folder of one recipe, trained unless it is already there."""
    cfg = load_config(CONFIG, [
        f"name={arm}-s{seed}-e{epochs}-lr{lr:g}", f"data.path={data}",
        f"runs_dir={a.work / 'runs'}", f"objective.name={arm}", f"train.seed={seed}",
        f"train.max_epochs={epochs}", f"train.lr={lr}", "train.threads=1",
        "train.eval_every=0", "train.checkpoint_every=0",
    ])  # fmt: skip
    if not (cfg.run_dir / "checkpoints" / "latest").is_file():
        train(cfg)
    return cfg.run_dir


def mean_std(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def render(rows: list[dict], a, minutes: float) -> str:
    def of(arm):
        return [r for r in rows if r["arm"] == arm]

    lines = [
        f"Seeds {a.seeds}; grid epochs {a.epochs} x lr {a.lrs}, the same for both, chosen per "
        f"seed and objective on valid mAP; {minutes:.1f} min.",
        "",
        "| encoder | test mAP | per seed | recipe (epochs / lr) |",
        "|---|---|---|---|",
    ]
    names = {
        "softcon": "SoftCon (Jaccard targets)",
        "simclr": "SimCLR",
        "random_init": "random init",
    }
    for arm in (*ARMS, "random_init"):
        maps = [r["arms"]["pretrained" if arm in ARMS else arm]["test"] for r in of(arm)]
        recipes = ", ".join(f"{r['epochs']} / {r['lr']:g}" for r in of(arm)) if arm in ARMS else ""
        per_seed = ", ".join(f"{m:.3f}" for m in maps)
        lines.append(f"| {names[arm]} | {mean_std(maps)} | {per_seed} | {recipes} |")
    lines += ["", f"Chance (test prevalence): mAP {rows[0]['chance']:.3f}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
