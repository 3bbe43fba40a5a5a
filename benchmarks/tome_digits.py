"""Token merging (ToMe, Bolya et al. 2023; SimVLG's progressive schedule, papers/simvlg.md) on
scikit-learn's handwritten digits: what does merging r tokens per block cost a frozen ViT
encoder in linear-probe accuracy, and what does it buy in encoder throughput?

Protocol (``configs/mae-digits.yaml`` with 1x1 patches, raw-pixel targets and lr 1e-3: a
4-layer, 64-wide ViT reading 64 tokens per 8x8 image, 16 of them visible while training):

- two MAE encoders per seed, trained the same number of epochs: ``plain`` (no merging) and
  ``progressive`` (``model.stem.merge: {r: 4, schedule: progressive}``, r growing 0 -> 4 over
  training: 4 is the most 4 blocks can merge from MAE's 16 visible tokens); their training
  wall-clock and analytic training FLOPs per image are recorded;
- each is then read with merge rates r in ``--rates`` on all 64 tokens (set on the loaded
  model, ToMe's off-the-shelf use): the linear probe (thrifty's, C chosen on valid) and cosine
  k-NN on test, and encoder throughput in images/s (``mean_features`` under no_grad on one
  batch of 256 test images; all r of an encoder timed round-robin in one process, the fastest
  of ``--repeats`` rounds, so that load from other jobs falls on every r alike);
- the encoder's analytic FLOPs per image at each r (``Transformer.flops_per_token``, training
  FLOPs, i.e. 3x the forward) are listed beside the measured speed.

Run (one CPU thread, about 5 minutes):

    OMP_NUM_THREADS=1 python benchmarks/tome_digits.py --out bench-runs/tome_digits.md

Smoke run: ``--epochs 1 --seeds 0 --repeats 2``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from thrifty.config import load_config
from thrifty.data.images import load_split, prepare_images
from thrifty.eval.image_probe import knn_probe, linear_probe, split_features
from thrifty.models.stem.patches import mean_features
from thrifty.runs import latest_checkpoint, load_model
from thrifty.train.loop import train

CONFIG = Path(__file__).parents[1] / "configs" / "mae-digits.yaml"
ARMS = {
    "plain": [],
    "progressive": ["model.stem.merge.r=4", "model.stem.merge.schedule=progressive"],
}


def trained(arm: str, seed: int, a, data: Path) -> tuple[Path, float]:
    """Run folder of one encoder, trained unless it already is, and the training seconds
    (nan when it was trained before)."""
    cfg = load_config(CONFIG, [
        f"name=tome-{arm}-s{seed}", f"data.path={data}", f"runs_dir={a.work / 'runs'}",
        "model.stem.patch_size=1", "objective.norm_pix=false", "train.lr=1e-3",
        f"train.seed={seed}", f"train.max_epochs={a.epochs}", "train.threads=1",
        "train.eval_every=0", "train.checkpoint_every=0", *ARMS[arm],
    ])  # fmt: skip
    seconds = float("nan")
    if not (cfg.run_dir / "checkpoints" / "latest").is_file():
        start = time.perf_counter()
        train(cfg)
        seconds = time.perf_counter() - start
    return cfg.run_dir, seconds


def set_rate(model, r: int) -> None:
    model.embed.merge = replace(model.embed.merge, r=r, schedule="constant")


@torch.no_grad()
def throughput(model, rates: list[int], images: torch.Tensor, repeats: int) -> dict[int, float]:
    """Images/s of the encoder on ``images`` at each merge rate, rates interleaved so that load
    from other jobs on the machine hits them alike; the fastest of ``repeats`` rounds."""
    model.eval()
    best = {r: 0.0 for r in rates}
    mean_features(model, images)  # warm-up
    for _ in range(repeats):
        for r in rates:
            set_rate(model, r)
            start = time.perf_counter()
            mean_features(model, images)
            best[r] = max(best[r], len(images) / (time.perf_counter() - start))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("bench-runs/tome_digits"))
    p.add_argument("--out", type=Path, default=Path("bench-runs/tome_digits.md"))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rates", type=int, nargs="+", default=[0, 2, 4, 8])
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args()
    torch.set_num_threads(1)
    data = a.work / "digits"
    if not (data / "manifest.json").is_file():
        prepare_images("digits", data, seed=0)
    test_images = load_split(data, "test")["images"][:256].float() / 255.0
    start = time.perf_counter()
    rows = []
    for seed in a.seeds:
        for arm in ARMS:
            run_dir, seconds = trained(arm, seed, a, data)
            model = load_model(run_dir).model
            state = json.loads((latest_checkpoint(run_dir) / "state.json").read_text())
            speed = throughput(model, a.rates, test_images, a.repeats)
            for r in a.rates:
                set_rate(model, r)
                features = {s: split_features(model, data, s) for s in ("train", "valid", "test")}
                rows.append({
                    "seed": seed, "arm": arm, "r": r, "images_per_s": speed[r],
                    "train_s": seconds, "train_flops_per_token": state["flops_per_token"],
                    "linear": linear_probe(features)["test"], "knn": knn_probe(features)["test"],
                    "flops_per_image": model.flops_per_token(64, 0.0) * 64,
                })  # fmt: skip
                print(json.dumps(rows[-1]))
    minutes = (time.perf_counter() - start) / 60
    a.out.parent.mkdir(parents=True, exist_ok=True)
    (a.work / "results.json").write_text(json.dumps(rows, indent=2))
    a.out.write_text(render(rows, a, minutes))
    print(a.out.read_text())


def mean_std(values, digits: int = 3) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}"


def render(rows: list[dict], a, minutes: float) -> str:
    lines = [
        f"Seeds {a.seeds}, {a.epochs} MAE epochs per encoder, {minutes:.1f} min in all.",
        "",
        "| trained | training s | training FLOPs (vs plain) |",
        "|---|---|---|",
    ]
    plain = [x["train_flops_per_token"] for x in rows if x["arm"] == "plain" and x["r"] == 0]
    for arm in ARMS:
        first = [x for x in rows if x["arm"] == arm and x["r"] == a.rates[0]]
        ratio = first[0]["train_flops_per_token"] / plain[0] if plain else float("nan")
        lines.append(f"| {arm} | {mean_std([x['train_s'] for x in first], 0)} | {ratio:.3f} |")
    lines += [
        "",
        "| trained | r at eval | tokens per block | linear probe (test) | k-NN (test) | "
        "images/s | speed-up | GFLOPs per image (train) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        base = [x["images_per_s"] for x in rows if x["arm"] == arm and x["r"] == 0]
        for r in a.rates:
            sel = [x for x in rows if x["arm"] == arm and x["r"] == r]
            if not sel:
                continue
            tokens = "/".join(str(64 - i * r) for i in range(4))
            speed = [x["images_per_s"] for x in sel]
            ratio = (
                mean_std([s / b for s, b in zip(speed, base)], 2) if len(base) == len(sel) else "-"
            )
            lines.append(
                f"| {arm} | {r} | {tokens} | {mean_std([x['linear'] for x in sel])} | "
                f"{mean_std([x['knn'] for x in sel])} | {mean_std(speed, 0)} | {ratio} | "
                f"{sel[0]['flops_per_image'] / 1e9:.4f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
