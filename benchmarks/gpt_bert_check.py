"""Small-scale check of GPT-BERT's claim (Charpentier & Samuel 2024): one model, both modes.

Trains three models with the same data, steps and seed — causal only, MNTP only (gpt_bert with
causal_fraction 0) and the 1:15 hybrid — then measures for each: causal validation loss, MNTP
validation loss at a fixed 15% mask rate, and BLiMP accuracy with the causal and MNTP backends.
Expected direction (paper card §9): the hybrid's causal loss is far below MNTP-only's and close
to causal-only's, and its MNTP loss is close to MNTP-only's.

    python benchmarks/gpt_bert_check.py --corpus BABYLM_DIR --blimp BLIMP_DIR --steps 800
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from thrifty.config import load_config
from thrifty.data.prepare import prepare
from thrifty.data.tokens import TokenStore
from thrifty.eval.minimal_pairs import evaluate_minimal_pairs
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.runs import load_model
from thrifty.train.loop import train

RECIPES = {
    "causal only": ["objective.name=causal_lm"],
    "MNTP only": ["objective.name=gpt_bert", "objective.causal_fraction=0.0"],
    "hybrid 1:15": ["objective.name=gpt_bert", "objective.causal_fraction=0.0625"],
}


@torch.no_grad()
def validation_losses(run: Path, data: Path, seq_len: int, n_windows: int = 256) -> dict:
    """Causal loss and MNTP loss at a fixed 15% mask rate on the same validation windows."""
    model = load_model(run).model
    store = TokenStore(data, "valid")
    ids = store.windows(range(min(n_windows, store.num_windows(seq_len))), seq_len)
    # A gpt_bert objective exposes both halves; z-loss off so the numbers are plain CE.
    probe = OBJECTIVES.build({"name": "gpt_bert", "z_loss": 0.0}, model, seed=1)
    chunks = ids.split(32)
    causal = sum(probe.causal_part(c, None)[0].value.item() for c in chunks) / len(chunks)
    mntp = 0.0
    for i, c in enumerate(chunks):
        random = probe.random(Batch(c, micro=-1 - i), "mask")
        mntp += probe.masked_part(c, None, 0.15, random)[0].value.item() / len(chunks)
    return {"causal_val_loss": causal, "mntp_val_loss_15": mntp}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--blimp", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("bench-runs/gpt_bert_check"))
    ap.add_argument("--budget-words", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--blimp-pairs", type=int, default=100)
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    args = ap.parse_args()

    data = args.work / "data"
    if not (data / "manifest.json").is_file():
        prepare([str(args.corpus)], data, budget_words=args.budget_words, vocab_size=4096)
    results = []
    for seed in args.seeds:
        for label, recipe in RECIPES.items():
            cfg = load_config(
                None,
                [
                    *recipe,
                    "model.size=nano",
                    "model.d_model=128",
                    "model.n_layers=4",
                    "model.n_heads=4",
                    "data.seq_len=64",
                    "train.batch_size=32",
                    "train.lr=3e-3",
                    "train.warmup_steps=50",
                    f"train.max_steps={args.steps}",
                    "train.eval_every=0",
                    "train.log_every=100",
                    "train.checkpoint_every=0",
                    f"train.seed={seed}",
                    f"data.path={data}",
                    f"runs_dir={args.work / 'runs'}",
                    f"name={label.split()[0].lower()}-s{seed}",
                ],
            )
            start = time.perf_counter()
            train(cfg, resume="auto")
            row = {"recipe": label, "seed": seed, "train_s": time.perf_counter() - start}
            row.update(validation_losses(cfg.run_dir, data, 64))
            loaded = load_model(cfg.run_dir)
            for backend in ("causal", "mntp"):
                res = evaluate_minimal_pairs(
                    loaded.model,
                    loaded.tokenizer(),
                    args.blimp,
                    backend=backend,
                    max_pairs_per_paradigm=args.blimp_pairs,
                )
                row[f"blimp_{backend}"] = res["macro"]
            results.append(row)
            print(json.dumps(row))
    lines = [
        "| recipe | seed | causal val loss | MNTP val loss (15%) | BLiMP causal | BLiMP MNTP "
        "| train s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['recipe']} | {r['seed']} | {r['causal_val_loss']:.3f} | "
            f"{r['mntp_val_loss_15']:.3f} | {100 * r['blimp_causal']:.1f} | "
            f"{100 * r['blimp_mntp']:.1f} | {r['train_s']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
