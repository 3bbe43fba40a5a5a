"""``thrifty demo``: prepare ~1M words, train a mini GPT-BERT for a few minutes, score BLiMP.

The main job in small: everything a BabyLM-style experiment does, end to end, on a laptop CPU.
Data comes from ``--data`` or ``THRIFTY_DATA`` (a folder with ``babylm/`` text and ``blimp/``
jsonl), or, online with thrifty[hf] installed, from the Hugging Face Hub into a local cache.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from thrifty.cli.numbers import parse_count
from thrifty.errors import UserError

# configs/mini-gptbert.yaml, in code so that the demo also runs from an installed wheel.
DEMO_RECIPE = [
    "model.size=mini",
    "data.seq_len=128",
    "objective.name=gpt_bert",
    "objective.causal_fraction=0.0625",
    "train.batch_size=32",
    "train.lr=3e-3",
    "train.warmup_steps=30",
    "train.weight_decay=0.1",
    "train.log_every=10",
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="prepare, train, score and report, small and fast", description=__doc__
    )
    p.add_argument(
        "--data", type=Path, help="folder with babylm/ and blimp/ (default: $THRIFTY_DATA)"
    )
    p.add_argument("--out", type=Path, default=Path("thrifty-demo"), help="work folder")
    p.add_argument("--budget-words", type=parse_count, default=1_000_000)
    # 250 steps keep the whole demo near 7 minutes on two AVX2-only cores (about 4 with AVX-512)
    p.add_argument("--steps", type=int, default=250, help="optimizer steps of 32×128 tokens")
    p.add_argument(
        "--blimp-pairs", type=int, default=100, help="pairs per BLiMP paradigm (max 1000)"
    )
    p.set_defaults(func=run)


def find_data(arg: Path | None) -> Path:
    folder = arg or (Path(os.environ["THRIFTY_DATA"]) if os.environ.get("THRIFTY_DATA") else None)
    if folder is None:
        from thrifty.data.hub import fetch_demo_data

        return fetch_demo_data()
    for sub in ("babylm", "blimp"):
        if not (folder / sub).is_dir():
            raise UserError(
                f"{folder} has no {sub}/ folder (expected babylm/ text and blimp/ jsonl)"
            )
    return folder


def training_sources(babylm: Path) -> list[str]:
    """What the demo may train on: everything under ``babylm/`` but a ``heldout/`` folder, which
    is kept for held-out measurement and never read for training."""
    return sorted(str(p) for p in babylm.iterdir() if p.name != "heldout")


def run(args: argparse.Namespace) -> int:
    from thrifty.config import load_config
    from thrifty.data.budget import Ledger
    from thrifty.data.prepare import prepare
    from thrifty.eval.minimal_pairs import evaluate_minimal_pairs
    from thrifty.jsonl import read_jsonl
    from thrifty.runs import load_model
    from thrifty.train.loop import train

    started = time.perf_counter()
    data = find_data(args.data)
    prepared = args.out / "data" / f"babylm-{args.budget_words}"
    if not (prepared / "manifest.json").is_file():
        sources = training_sources(data / "babylm")
        prepare(sources, prepared, budget_words=args.budget_words, vocab_size=8192)
    t_prepared = time.perf_counter()

    every = max(args.steps // 3, 1)
    cfg = load_config(
        None,
        [
            *DEMO_RECIPE,
            f"data.path={prepared}",
            f"runs_dir={args.out / 'runs'}",
            "name=mini-gptbert",
            f"train.max_steps={args.steps}",
            f"train.eval_every={every}",
            f"train.checkpoint_every={every}",
        ],
    )
    train(cfg, resume="auto")
    t_trained = time.perf_counter()

    loaded = load_model(cfg.run_dir)
    blimp = evaluate_minimal_pairs(
        loaded.model,
        loaded.tokenizer(),
        data / "blimp",
        backend="causal",
        max_pairs_per_paradigm=args.blimp_pairs,
    )
    (cfg.run_dir / "eval").mkdir(exist_ok=True)
    (cfg.run_dir / "eval" / "blimp_causal.json").write_text(
        json.dumps({**blimp, "ledger": loaded.ledger()})
    )
    t_scored = time.perf_counter()

    rows = read_jsonl(cfg.run_dir / "metrics.jsonl")
    train_rows = [r for r in rows if "loss" in r]
    val_rows = [r for r in rows if "val_loss" in r]
    print("\n== thrifty demo: mini GPT-BERT on", f"{args.budget_words:,}", "BabyLM words ==")
    print(
        f"training loss: {train_rows[0]['loss']:.3f} (step {train_rows[0]['step']}) -> "
        f"{train_rows[-1]['loss']:.3f} (step {train_rows[-1]['step']})"
    )
    for r in val_rows:
        parts = ", ".join(f"{k[4:]} {v:.3f}" for k, v in r.items() if k.endswith("loss"))
        print(f"  validation at step {r['step']}: {parts}")
    speed = train_rows[-1]
    print(f"throughput: {speed['tokens_per_s']:.0f} tokens/s, MFU {speed['mfu']:.2f}")
    print(f"\nBLiMP ({blimp['n_pairs']} pairs, causal scoring, ties count as wrong):")
    for term, acc in sorted(blimp["phenomena"].items(), key=lambda kv: -kv[1]):
        print(f"  {term:<40} {100 * acc:5.1f}")
    print(f"  {'macro average over paradigms':<40} {100 * blimp['macro']:5.1f}")
    print("\nledger:")
    for line in Ledger.load(cfg.run_dir / "ledger.json").summary_lines():
        print("  " + line)
    print(
        f"\nwall time: prepare {t_prepared - started:.0f}s, train {t_trained - t_prepared:.0f}s, "
        f"BLiMP {t_scored - t_trained:.0f}s, total {t_scored - started:.0f}s"
    )
    print(f"run folder: {cfg.run_dir}  (try: thrifty audit {cfg.run_dir})")
    return 0
