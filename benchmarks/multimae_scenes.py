"""MultiMAE's cross-modal check on procedural scenes (papers/multimae.md, small-scale check):
after pretraining on rgb + depth + segmentation, does one modality predict another better than
the mean map of the training set does?

Protocol (``configs/multimae-scenes.yaml``: a 4-layer, 128-wide ViT on 4x4 patches of 32x32
scenes, 32 of the 192 tokens visible, Dirichlet(1) split):

- ``images:scenes`` (``--count`` scenes, seed 0), split 70 / 10 / 20, stratified by the class
  of the largest shape; every number is on ``test``;
- pretrain ``--steps`` steps per training seed (``--seeds``); the numbers are mean ± std over
  those seeds;
- at evaluation the visible tokens are chosen by hand (uniform patches, a fixed generator), not
  by the Dirichlet draw, and every decoder predicts every patch:
  - depth from RGB: the 32-token budget all on rgb, depth and segmentation fully hidden;
    depth MSE (depth in [0, 1]) over all patches, against the training set's mean depth map;
  - the same for segmentation: pixel accuracy against the mean map's most frequent class;
  - RGB from segmentation: the budget all on segmentation, rgb hidden; RGB MSE against the
    training set's mean image (coarse reconstruction: colour follows class);
  - depth with help: 16 depth tokens alone vs the same 16 plus 16 rgb tokens, depth MSE on the
    hidden depth patches (does seeing another modality make reconstruction easier?);
  - RGB with help: 4 rgb tokens (a glimpse of the background colour) alone vs the same 4 plus
    28 segmentation tokens, RGB MSE on the hidden rgb patches.

Run (one CPU thread, about 7 minutes; see BENCHMARKS.md):

    OMP_NUM_THREADS=1 python benchmarks/multimae_scenes.py --out bench-runs/multimae.md

Smoke run: ``--steps 20 --seeds 0 --count 300``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from thrifty.config import load_config
from thrifty.data.images import load_split, prepare_images
from thrifty.data.source import open_source
from thrifty.models.stem.patches import patchify
from thrifty.objectives import OBJECTIVES
from thrifty.objectives.multimae import visible_index
from thrifty.runs import load_model
from thrifty.train.checkpoint import load_objective_weights
from thrifty.train.loop import train

CONFIG = Path(__file__).parents[1] / "configs" / "multimae-scenes.yaml"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("bench-runs/multimae_scenes"))
    p.add_argument("--out", type=Path, default=Path("bench-runs/multimae.md"))
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--steps", type=int, default=450)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    a = p.parse_args()
    torch.set_num_threads(1)
    data = a.work / f"scenes-{a.count}"
    if not (data / "manifest.json").is_file():
        prepare_images("scenes", data, count=a.count, seed=0)
    start = time.perf_counter()
    rows = []
    for seed in a.seeds:
        cfg = load_config(CONFIG, [
            f"name=multimae-s{seed}-{a.steps}", f"data.path={data}", f"runs_dir={a.work / 'runs'}",
            f"train.seed={seed}", f"train.max_steps={a.steps}", "train.threads=1",
            "train.eval_every=0", "train.checkpoint_every=0",
        ])  # fmt: skip
        if not (cfg.run_dir / "checkpoints" / "latest").is_file():
            train(cfg)
        rows.append({"seed": seed, **evaluate(cfg.run_dir, data)})
        print(json.dumps(rows[-1]))
    minutes = (time.perf_counter() - start) / 60
    a.out.parent.mkdir(parents=True, exist_ok=True)
    (a.work / "results.json").write_text(json.dumps(rows, indent=2))
    a.out.write_text(render(rows, a, minutes))
    print(a.out.read_text())


def shown(counts: dict[str, int], names: list[str], rows: int, patches: int) -> torch.Tensor:
    """(B, K) visible tokens: ``counts[name]`` uniform patches of each modality, fixed seed."""
    g = torch.Generator().manual_seed(1234)
    rank = torch.rand(rows, len(names), patches, generator=g).argsort(-1).argsort(-1)
    wanted = torch.tensor([counts.get(n, 0) for n in names])
    return visible_index(rank < wanted[None, :, None])


@torch.no_grad()
def evaluate(run_dir: Path, data: Path) -> dict[str, float]:
    loaded = load_model(run_dir)
    objective = OBJECTIVES.build(loaded.cfg.objective, loaded.model, seed=0)
    objective.owned.load_state_dict(load_objective_weights(loaded.checkpoint))
    objective.owned.eval()
    test = open_source(data, "test")
    fields = test.batch(range(test.num_items(0)), 0)
    maps = objective.maps(fields)
    names, N, K = objective.names, objective.num_patches, objective.cfg.visible_tokens
    P = objective.patch
    B = fields["images"].shape[0]

    def mse(name, predicted, counted=None):
        errors = objective.errors(name, predicted, maps[name])
        return float(errors.mean() if counted is None else errors[counted].mean())

    train_split = load_split(data, "train")
    mean_depth = train_split["depth"].float().mean(0, keepdim=True) / 255.0
    mean_image = train_split["images"].float().mean(0, keepdim=True) / 255.0
    seg_mode = torch.mode(train_split["segmentation"].long().flatten(1), 0).values
    out = {}
    from_rgb = objective.predict(maps, shown({"rgb": K}, names, B, N))
    out["depth_from_rgb"] = mse("depth", from_rgb["depth"])
    out["depth_mean_map"] = mse("depth", patchify(mean_depth.expand(B, -1, -1, -1), P))
    seg = fields["segmentation"]
    classes = objective.cfg.segmentation_classes
    guessed = from_rgb["segmentation"].reshape(B, N, classes, -1).argmax(2)  # (B, N, p²)
    truth = patchify(seg[:, None].float(), P).long()
    out["seg_acc_from_rgb"] = float((guessed == truth).float().mean())
    out["seg_acc_mode_map"] = float((seg_mode.reshape(seg.shape[1:]) == seg).float().mean())
    from_seg = objective.predict(maps, shown({"segmentation": K}, names, B, N))
    out["rgb_from_seg"] = mse("rgb", from_seg["rgb"])
    out["rgb_mean_image"] = mse("rgb", patchify(mean_image.expand(B, -1, -1, -1), P))
    half = K // 2
    alone = shown({"depth": half}, names, B, N)
    helped = shown({"depth": half, "rgb": half}, names, B, N)
    hidden = torch.ones(B, len(names) * N, dtype=torch.bool).scatter_(1, alone, False)
    hidden = hidden[:, names.index("depth") * N :][:, :N]  # the same depth patches in both
    out["depth_hidden_alone"] = mse("depth", objective.predict(maps, alone)["depth"], hidden)
    out["depth_hidden_with_rgb"] = mse("depth", objective.predict(maps, helped)["depth"], hidden)
    few = shown({"rgb": 4}, names, B, N)  # a glimpse of the background colour
    few_seg = shown({"rgb": 4, "segmentation": K - 4}, names, B, N)
    hidden = torch.ones(B, len(names) * N, dtype=torch.bool).scatter_(1, few, False)
    hidden = hidden[:, names.index("rgb") * N :][:, :N]
    out["rgb_hidden_alone"] = mse("rgb", objective.predict(maps, few)["rgb"], hidden)
    out["rgb_hidden_with_seg"] = mse("rgb", objective.predict(maps, few_seg)["rgb"], hidden)
    return out


def mean_std(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"


def render(rows: list[dict], a, minutes: float) -> str:
    def cell(key):
        return mean_std([r[key] for r in rows])

    lines = [
        f"Seeds {a.seeds}; {a.count} scenes (test {round(a.count * 0.2)}); {a.steps} steps of "
        f"batch 64 per seed; {minutes:.1f} min.",
        "",
        "| check (test scenes) | MultiMAE | baseline |",
        "|---|---|---|",
        f"| depth MSE, 32 rgb tokens visible, no depth | {cell('depth_from_rgb')} | "
        f"{cell('depth_mean_map')} (train mean depth map) |",
        f"| segmentation pixel accuracy, 32 rgb tokens, no segmentation | "
        f"{cell('seg_acc_from_rgb')} | {cell('seg_acc_mode_map')} (train per-pixel mode) |",
        f"| RGB MSE, 32 segmentation tokens visible, no rgb | {cell('rgb_from_seg')} | "
        f"{cell('rgb_mean_image')} (train mean image) |",
        f"| depth MSE on hidden depth patches, 16 depth tokens + 16 rgb | "
        f"{cell('depth_hidden_with_rgb')} | {cell('depth_hidden_alone')} (16 depth tokens alone) |",
        f"| RGB MSE on hidden rgb patches, 4 rgb tokens + 28 segmentation | "
        f"{cell('rgb_hidden_with_seg')} | {cell('rgb_hidden_alone')} (4 rgb tokens alone) |",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
