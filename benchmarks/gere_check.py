"""Small-scale check of GeRe (Zhang et al. 2025; papers/gere.md): replay against forgetting.

Pretrains a causal model on BabyLM text (the old domain, A), then continues it on WikiText (the
new domain, B, prepared with A's tokenizer) with the same steps and seed in every arm:

- no replay: B only (the ``replay`` objective with ratio 0, so it still reports A's loss);
- replay CE: a fixed set of A windows mixed into every batch (``ratio``), CE on both;
- replay + TM: plus GeRe's threshold-margin loss on the last hidden states, with the dynamic
  weight ('dy', w = CE / L_TM) or a fixed one (``tm100``: GeRe's default 100, ``tm1``);
- replay + L2 / KL (``--arms``): the card's feature / logit imitation baselines.

Reports, before and after: validation loss on A (forgetting) and on B (learning), and BLiMP
accuracy on a per-paradigm subsample (causal scoring), plus each arm's training time. The card
expects no replay to forget most, replay to recover much of it, and TM to match or beat plain
replay on A with little cost on B; at this scale TM and plain replay may not separate.

Full run (2 layers, width 128, batch 32 x 128; the base model sees 2 epochs of 1M BabyLM words,
about 9 min on two idle CPU cores; each arm 1 epoch of WikiText's ~455k words plus replay,
about 3 min; BLiMP on 100 pairs per paradigm, under a minute per model; ~30 min in all):

    python benchmarks/gere_check.py --data DATA --arms none replay tm l2 kl \\
        --blimp-pairs 100 --out gere_check.md

Smoke run (about two minutes):

    python benchmarks/gere_check.py --data DATA --base-words 40000 --new-words 30000 \\
        --d-model 64 --seq-len 64 --replay-windows 64 --blimp-pairs 5 --work /tmp/gere-smoke
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from thrifty.analysis.ensemble import token_nll
from thrifty.config import load_config
from thrifty.data.prepare import prepare
from thrifty.data.tokens import TokenStore
from thrifty.eval.minimal_pairs import evaluate_minimal_pairs
from thrifty.runs import load_model
from thrifty.train.loop import train

ARMS = {
    "none": ("no replay", ["objective.ratio=0", "objective.constraint=none"]),
    "replay": ("replay CE", ["objective.constraint=none"]),
    "tm": ("replay + TM (dy)", ["objective.constraint=tm", "objective.dynamic=true"]),
    "tm100": ("replay + TM (w 100)", ["objective.constraint=tm", "objective.dynamic=false"]),
    "tm1": (
        "replay + TM (w 1)",
        ["objective.constraint=tm", "objective.dynamic=false", "objective.weight=1"],
    ),
    "l2": ("replay + L2 features (dy)", ["objective.constraint=l2", "objective.dynamic=true"]),
    "kl": ("replay + KL logits (dy)", ["objective.constraint=kl", "objective.dynamic=true"]),
}


def model_args(args: argparse.Namespace) -> list[str]:
    return [
        "model.size=nano", f"model.d_model={args.d_model}", f"model.n_layers={args.layers}",
        "model.n_heads=4", f"model.max_seq_len={args.seq_len}", f"data.seq_len={args.seq_len}",
        f"train.batch_size={args.batch_size}", "train.eval_every=0", "train.log_every=100",
        "train.checkpoint_every=0", "train.peak_flops=1e11", f"train.device={args.device}",
        f"runs_dir={args.work / 'runs'}",
        *([f"train.threads={args.threads}"] if args.threads else []),
    ]  # fmt: skip


def prepare_data(args: argparse.Namespace) -> tuple[Path, Path]:
    old, new = args.work / "old-babylm", args.work / "new-wikitext"
    if not (old / "manifest.json").is_file():
        prepare([str(args.data / "babylm" / "sample_1M_dev")], old, budget_words=args.base_words,
                vocab_size=args.vocab_size, valid_fraction=0.02, seed=0)  # fmt: skip
    if not (new / "manifest.json").is_file():
        prepare([str(args.data / "wikitext2")], new, budget_words=args.new_words,
                valid_fraction=0.05, seed=0, tokenizer_path=old / "tokenizer.json")  # fmt: skip
    return old, new


def val_loss(run: Path, data: Path, seq_len: int, windows: int, device: str) -> float:
    """Mean causal token loss on the first ``windows`` windows of a validation split."""
    model = load_model(run, device).model
    return token_nll(model, TokenStore(data, "valid"), seq_len, max_windows=windows)["loss"]


def measure(run: Path, old: Path, new: Path, args: argparse.Namespace) -> dict:
    loaded = load_model(run, args.device)
    blimp = evaluate_minimal_pairs(
        loaded.model,
        loaded.tokenizer(),
        args.data / "blimp",
        backend="causal",
        max_pairs_per_paradigm=args.blimp_pairs,
    )
    return {
        "old_loss": val_loss(run, old, args.seq_len, args.eval_windows, args.device),
        "new_loss": val_loss(run, new, args.seq_len, args.eval_windows, args.device),
        "blimp": blimp["macro"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", type=Path, required=True, help="folder with babylm/ wikitext2/ blimp/"
    )
    ap.add_argument("--work", type=Path, default=Path("bench-runs/gere_check"))
    ap.add_argument("--base-words", type=int, default=1_000_000)
    ap.add_argument("--new-words", type=int, default=None, help="WikiText words (default all)")
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--base-epochs", type=float, default=2.0)
    ap.add_argument("--new-epochs", type=float, default=1.0)
    ap.add_argument("--base-lr", type=float, default=3e-3)
    ap.add_argument("--new-lr", type=float, default=1e-3)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--replay-windows", type=int, default=1000)
    ap.add_argument("--ratio", type=float, default=0.25, help="replay rows per new row")
    ap.add_argument("--arms", nargs="+", default=["none", "replay", "tm"], choices=list(ARMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blimp-pairs", type=int, default=50)
    ap.add_argument("--eval-windows", type=int, default=500)
    ap.add_argument("--curve-every", type=int, default=50, help="validation every N steps")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", type=Path, help="also write the markdown tables here")
    args = ap.parse_args()

    old, new = prepare_data(args)
    base = load_config(None, [
        *model_args(args), "objective.name=causal_lm", f"data.path={old}", "name=base",
        f"train.max_epochs={args.base_epochs}", f"train.lr={args.base_lr}",
        "train.warmup_steps=50", f"train.seed={args.seed}",
    ])  # fmt: skip
    start = time.perf_counter()
    train(base, resume="auto")
    results = [{"arm": "start model (BabyLM only)", "train_s": time.perf_counter() - start}]
    results[0] |= measure(base.run_dir, old, new, args)
    print(json.dumps(results[0]), flush=True)
    curves = {}
    for arm in args.arms:
        label, extra = ARMS[arm]
        cfg = load_config(None, [
            *model_args(args), "objective.name=replay", f"objective.data={old}",
            f"objective.windows={args.replay_windows}", f"objective.ratio={args.ratio}",
            f"objective.seed={args.seed}", *extra, f"data.path={new}", f"name={arm}",
            f"train.init_from={base.run_dir}", f"train.max_epochs={args.new_epochs}",
            f"train.lr={args.new_lr}", "train.warmup_steps=20", f"train.seed={args.seed}",
            f"train.eval_every={args.curve_every}", "train.eval_batches=8",
        ])  # fmt: skip
        start = time.perf_counter()
        train(cfg, resume="auto")
        row = {"arm": label, "train_s": time.perf_counter() - start}
        row |= measure(cfg.run_dir, old, new, args)
        results.append(row)
        curves[label] = [
            (r["step"], r["val_loss"], r["val_old_loss"])
            for r in map(json.loads, (cfg.run_dir / "metrics.jsonl").read_text().splitlines())
            if "val_old_loss" in r
        ]
        print(json.dumps(row), flush=True)
    print_tables(results, curves, args.out)


def print_tables(results: list[dict], curves: dict, out: Path | None) -> None:
    start = results[0]
    lines = [
        "| model | old-domain loss (BabyLM) | Δ forgetting | new-domain loss (WikiText) "
        "| BLiMP (causal) | train s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['arm']} | {r['old_loss']:.4f} | {r['old_loss'] - start['old_loss']:+.4f} | "
            f"{r['new_loss']:.4f} | {100 * r['blimp']:.1f} | {r['train_s']:.0f} |"
        )
    lines += ["", "Validation during continual training (step: new-domain / old-domain loss):", ""]
    for label, points in curves.items():
        shown = ", ".join(f"{s}: {n:.3f} / {o:.3f}" for s, n, o in points)
        lines.append(f"- {label}: {shown}")
    table = "\n".join(lines)
    print(table)
    if out:
        out.write_text(table + "\n")


if __name__ == "__main__":
    main()
