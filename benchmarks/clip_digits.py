"""CLIP on digit captions (papers/clip.md, small-scale check): after symmetric contrastive
pretraining on image–caption pairs, how far above chance does zero-shot classification go, and
how much does retrieval improve over the same towers untrained?

Protocol (``configs/clip-digits.yaml``: a 4-layer, 64-wide ViT on 2x2 patches of the 8x8
digits as the image tower, a 2-layer, 64-wide text transformer, a 32-wide joint space):

- ``pairs:digits``: the 1,797 digits split as ``images:digits`` (stratified, seed 0: 1,259
  train / 179 valid / 359 test pairs), each captioned from its label in one of 4 templates;
- the recipe (``--epochs`` x ``--lrs``) is chosen per seed by zero-shot accuracy on ``valid``;
- every number is on ``test``, mean ± std over ``--seeds`` training seeds, beside the
  untrained towers of the same architecture and seed, and chance.

Retrieval treats a repeated caption text as one candidate (``thrifty.eval.zero_shot``). An
image does not tell which of its class's 4 templates captioned it, so even a perfect model
has image->text R@1 about 1/4 (and R@5 1): read R@1 against that ceiling, not against 1.

Run (one CPU thread, a few minutes; see BENCHMARKS.md):

    OMP_NUM_THREADS=1 python benchmarks/clip_digits.py --out bench-runs/clip.md

Smoke run: ``--epochs 2 --lrs 2e-3 --seeds 0``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from thrifty.cli.zero_shot import clip_towers
from thrifty.config import load_config
from thrifty.data.pairs import prepare_pairs
from thrifty.eval.zero_shot import zero_shot
from thrifty.runs import load_model
from thrifty.train.loop import train

CONFIG = Path(__file__).parents[1] / "configs" / "clip-digits.yaml"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("bench-runs/clip"))
    p.add_argument("--out", type=Path, default=Path("bench-runs/clip.md"))
    p.add_argument("--epochs", type=int, nargs="+", default=[10, 30])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = p.parse_args()
    torch.set_num_threads(1)
    data = a.work / "pairs"
    if not (data / "manifest.json").is_file():
        prepare_pairs("digits", data, seed=0)
    start = time.perf_counter()
    rows = []
    for seed in a.seeds:
        tried = []
        for epochs in a.epochs:
            for lr in a.lrs:
                loaded = load_model(pretrain(a, data, seed, epochs, lr))
                valid = zero_shot(*clip_towers(loaded, True), data, "valid")
                accuracy = valid["zero_shot"]["accuracy"]
                tried.append((accuracy, epochs, lr, loaded))
                print(f"seed {seed} epochs {epochs} lr {lr:g}: valid zero-shot {accuracy:.3f}")
        _, epochs, lr, loaded = max(tried, key=lambda t: t[0])
        for arm, trained in (("clip", True), ("random_init", False)):
            result = zero_shot(*clip_towers(loaded, trained), data, "test")
            rows.append({"seed": seed, "arm": arm, "epochs": epochs, "lr": lr, **result})
    minutes = (time.perf_counter() - start) / 60
    a.out.parent.mkdir(parents=True, exist_ok=True)
    (a.work / "results.json").write_text(json.dumps(rows, indent=2))
    a.out.write_text(render(rows, a, minutes))
    print(a.out.read_text())


def pretrain(a, data: Path, seed: int, epochs: int, lr: float) -> Path:
    """The run folder of one recipe, trained unless it is already there."""
    cfg = load_config(CONFIG, [
        f"name=clip-s{seed}-e{epochs}-lr{lr:g}", f"data.path={data}",
        f"runs_dir={a.work / 'runs'}", f"train.seed={seed}", f"train.max_epochs={epochs}",
        f"train.lr={lr}", "train.threads=1", "train.eval_every=0", "train.checkpoint_every=0",
    ])  # fmt: skip
    if not (cfg.run_dir / "checkpoints" / "latest").is_file():
        train(cfg)
    return cfg.run_dir


def mean_std(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


METRICS = (
    ("zero-shot acc", lambda r: r["zero_shot"]["accuracy"]),
    ("i→t R@1", lambda r: r["image_to_text"]["R@1"]),
    ("i→t R@5", lambda r: r["image_to_text"]["R@5"]),
    ("t→i R@1", lambda r: r["text_to_image"]["R@1"]),
    ("t→i R@5", lambda r: r["text_to_image"]["R@5"]),
)


def render(rows: list[dict], a, minutes: float) -> str:
    lines = [
        f"Seeds {a.seeds}; grid epochs {a.epochs} x lr {a.lrs}, chosen per seed on valid "
        f"zero-shot accuracy; {minutes:.1f} min.",
        "",
        "| towers | " + " | ".join(name for name, _ in METRICS) + " | recipe (epochs / lr) |",
        "|---|" + "---|" * (len(METRICS) + 1),
    ]
    for arm, label in (("clip", "CLIP-trained"), ("random_init", "random init")):
        of = [r for r in rows if r["arm"] == arm]
        cells = [mean_std([get(r) for r in of]) for _, get in METRICS]
        recipes = ", ".join(f"{r['epochs']} / {r['lr']:g}" for r in of) if arm == "clip" else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {recipes} |")
    first = rows[0]
    chance = [
        first["zero_shot"]["chance"],
        first["image_to_text"]["chance"]["R@1"],
        first["image_to_text"]["chance"]["R@5"],
        first["text_to_image"]["chance"]["R@1"],
        first["text_to_image"]["chance"]["R@5"],
    ]
    lines.append("| chance | " + " | ".join(f"{c:.3f}" for c in chance) + " | |")
    per_seed = ", ".join(f"{r['zero_shot']['accuracy']:.3f}" for r in rows if r["arm"] == "clip")
    lines += ["", f"CLIP test zero-shot accuracy per seed: {per_seed}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
