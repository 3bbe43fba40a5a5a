"""Small-scale check of CoLoR-Filter (Brandfonbrener et al. 2024; papers/color_filter.md).

Pool: BabyLM sources other than CHILDES (BNC spoken, Gutenberg, OpenSubtitles, Simple Wikipedia;
``babylm/sample_600k``) plus WikiText-2 (valid + test). Target: CHILDES — ``--target-words`` of
``sample_600k/childes`` condition the auxiliary models, and the held-out CHILDES file measures.
For every τ, ``thrifty select`` keeps N pool words out of τ·N candidates; a random N-word sample
of the pool is the baseline. Every arm shares one tokenizer (trained on the random sample) so the
losses are comparable, and trains a fresh model on its N words for the same number of epochs
(equal training words). Reports the target-domain (CHILDES) validation loss, the loss on held-out
pool text (what the selection gives up), the words each arm charges to the ledger (CoLoR's
candidates and target text included), and the domain composition of each selection.

The pool holds no CHILDES, so the selection can only pick the nearest text (conversational
sources); the card expects the target loss to fall below random and the gap to grow with τ.

Full run (N = 300k words, τ ∈ {2, 4, 8}; auxiliary and trained models 2 layers, width 128). On
two idle CPU cores: per τ about 2 min for the two auxiliary models plus scoring of τ·N words by
both (~1 min per 300k candidate words, so ~7 min at τ = 8), and ~3 min per trained model
(4 arms); ~30-35 min in all:

    python benchmarks/color_filter_check.py --data DATA --budget-words 300000 --taus 2 4 8 \\
        --target-words 100000 --epochs 2 --out color_filter_check.md

Smoke run (about two minutes):

    python benchmarks/color_filter_check.py --data DATA --budget-words 20000 --taus 2 4 \\
        --target-words 10000 --heldout-words 10000 --epochs 1 --d-model 64 --seq-len 64 \\
        --work /tmp/color-smoke
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from thrifty.analysis.ensemble import token_nll
from thrifty.cli.select import color_filter_select
from thrifty.config import load_config
from thrifty.data.budget import Ledger
from thrifty.data.prepare import load_manifest, prepare
from thrifty.data.tokens import TokenStore
from thrifty.runs import load_model
from thrifty.train.loop import train

POOL = [
    "babylm/sample_600k/bnc_spoken.train.gz",
    "babylm/sample_600k/gutenberg.train.gz",
    "babylm/sample_600k/open_subtitles.train.gz",
    "babylm/sample_600k/simple_wiki.train.gz",
    "wikitext2/valid.txt.gz",
    "wikitext2/test.txt.gz",
]
TARGET = "babylm/sample_600k/childes.train.gz"
TARGET_HELDOUT = "babylm/heldout/childes_dev.train.gz"


def recipe(args: argparse.Namespace) -> list[str]:
    return [
        "model.size=nano", f"model.d_model={args.d_model}", f"model.n_layers={args.layers}",
        "model.n_heads=4", f"model.max_seq_len={max(256, args.seq_len)}",
        f"data.seq_len={args.seq_len}", "objective.name=causal_lm",
        f"train.batch_size={args.batch_size}", "train.lr=3e-3", "train.warmup_steps=50",
        "train.eval_every=0", "train.log_every=100", "train.checkpoint_every=0",
        "train.peak_flops=1e11", f"train.device={args.device}",
        *([f"train.threads={args.threads}"] if args.threads else []),
    ]  # fmt: skip


def loss_on(run: Path, data: Path, split: str, args: argparse.Namespace) -> float:
    model = load_model(run, args.device).model
    store = TokenStore(data, split)
    return token_nll(model, store, args.seq_len, max_windows=args.eval_windows)["loss"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, required=True, help="folder with babylm/ and wikitext2/")
    ap.add_argument("--work", type=Path, default=Path("bench-runs/color_filter_check"))
    ap.add_argument("--budget-words", type=int, default=300_000, help="N, words per selection")
    ap.add_argument("--taus", type=float, nargs="+", default=[2, 4, 8])
    ap.add_argument("--methods", nargs="+", default=["color"], choices=["color", "conditional"])
    ap.add_argument("--target-words", type=int, default=100_000)
    ap.add_argument("--heldout-words", type=int, default=200_000)
    ap.add_argument("--chunk-words", type=int, default=100)
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--eval-windows", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", type=Path, help="also write the markdown tables here")
    args = ap.parse_args()

    pool = [str(args.data / p) for p in POOL]
    n = args.budget_words
    random_data, heldout = args.work / "random", args.work / "childes-heldout"
    if not (random_data / "manifest.json").is_file():
        prepare(pool, random_data, budget_words=n, vocab_size=args.vocab_size,
                max_doc_words=args.chunk_words, valid_fraction=0.02, seed=0)  # fmt: skip
    tokenizer = random_data / "tokenizer.json"
    if not (heldout / "manifest.json").is_file():
        prepare([str(args.data / TARGET_HELDOUT)], heldout, budget_words=args.heldout_words,
                valid_fraction=0.0, tokenizer_path=tokenizer, seed=0)  # fmt: skip
    arms = [("random", None, random_data, None)]
    for method in args.methods:
        for tau in args.taus:
            out = args.work / f"{method}-tau{tau:g}"
            if not (out / "manifest.json").is_file():
                # the whole pipeline may read: candidates, target, the shared tokenizer's sample
                total = round(tau * n) + args.target_words + n
                color_filter_select(
                    pool, [str(args.data / TARGET)], out, tau=tau, keep_words=n,
                    budget_words=total, target_words=args.target_words, method=method,
                    chunk_words=args.chunk_words,
                    tokenizer=tokenizer, overrides=recipe(args), device=args.device,
                    threads=args.threads, seed=0,
                )  # fmt: skip
            composition = json.loads((out / "selection.json").read_text())["composition"]
            arms.append((method, tau, out, composition))
    results = []
    for seed in args.seeds:
        for method, tau, data, composition in arms:
            name = f"{method}-tau{tau:g}-s{seed}" if tau else f"random-s{seed}"
            cfg = load_config(None, [
                *recipe(args), f"data.path={data}", f"train.max_epochs={args.epochs}",
                f"train.seed={seed}", f"runs_dir={args.work / 'runs'}", f"name={name}",
            ])  # fmt: skip
            start = time.perf_counter()
            train(cfg, resume="auto")
            row = {"arm": method, "tau": tau, "seed": seed, "train_s": time.perf_counter() - start}
            row["charged"] = Ledger.from_dict(load_manifest(data)["ledger"]).charged_words()
            row["target_loss"] = loss_on(cfg.run_dir, heldout, "train", args)
            row["pool_loss"] = loss_on(cfg.run_dir, random_data, "valid", args)
            row["composition"] = composition
            results.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "composition"}), flush=True)
    print_tables(results, args.out)


def print_tables(results: list[dict], out: Path | None) -> None:
    random_loss = {r["seed"]: r["target_loss"] for r in results if r["arm"] == "random"}
    lines = [
        "| selection | τ | seed | charged words | CHILDES val loss | vs random | pool val loss "
        "| train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        tau = f"{r['tau']:g}" if r["tau"] else "–"
        delta = r["target_loss"] - random_loss.get(r["seed"], float("nan"))
        lines.append(
            f"| {r['arm']} | {tau} | {r['seed']} | {r['charged']:,} | {r['target_loss']:.4f} | "
            f"{delta:+.4f} | {r['pool_loss']:.4f} | {r['train_s']:.0f} |"
        )
    shown = [r for r in results if r["composition"] and r["seed"] == results[0]["seed"]]
    if shown:
        names = [c["path"].split("/")[-1].split(".")[0] for c in shown[0]["composition"]]
        names = [f"wikitext {x}" if x in ("valid", "test") else x for x in names]
        lines += ["", "Domain composition (share of words: candidates → selected):", ""]
        lines.append("| selection | τ | " + " | ".join(names) + " |")
        lines.append("|---|---:|" + "---:|" * len(names))
        for r in shown:
            cells = [
                f"{c['candidate_share']:.0%} → {c['selected_share']:.0%}" for c in r["composition"]
            ]
            lines.append(f"| {r['arm']} | {r['tau']:g} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if out:
        out.write_text(table + "\n")


if __name__ == "__main__":
    main()
