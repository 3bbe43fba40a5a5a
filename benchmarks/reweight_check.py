"""Small-scale check of loss-based sample reweighting (Sow et al. 2025; papers/loss_reweighting.md).

The card's claim: down-weighting low-loss samples (LinUpper) beats uniform weighting when the
corpus holds redundant easy data, because gradient stops being spent on what is already learned.
This script builds such a corpus — natural BabyLM text plus ``--dup-fraction`` (30%) of
duplicated easy text: a few short natural passages copied many times — trains one model per
strategy with the same data order, steps and seed (equal training words), and measures the loss
on *clean* held-out text (BabyLM's held-out files, prepared with the same tokenizer).

Full run (card scale: 2 layers, width 128, batch 32 x 128; ~1M words = ~1.3M tokens, 2 epochs
per arm; about 9 min per arm at ~5k tokens/s on two idle CPU cores, ~55 min for 3 arms x 2
seeds; causal_lm reweights in one pass, so the arms cost the same):

    python benchmarks/reweight_check.py --babylm DATA/babylm/sample_1M_dev \\
        --heldout DATA/babylm/heldout --natural-words 700000 --epochs 2 --seeds 0 1 \\
        --out reweight_check.md

Cost of reweighting per step (the two paths against the plain fused loss, ~2 min):

    python benchmarks/reweight_check.py --overhead --threads 2

Smoke run (about a minute):

    python benchmarks/reweight_check.py --babylm DATA/babylm/sample_1M_dev \\
        --heldout DATA/babylm/heldout --natural-words 30000 --heldout-words 20000 --epochs 1 \\
        --d-model 64 --seq-len 64 --work /tmp/reweight-smoke
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from thrifty.analysis.ensemble import token_nll
from thrifty.config import load_config
from thrifty.data.corpus import resolve_source
from thrifty.data.prepare import prepare
from thrifty.data.tokens import TokenStore
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.runs import load_model
from thrifty.train.loop import train

ARMS = {
    "uniform (plain mean)": [],
    "linupper": ["train.reweight.strategy=linupper"],
    "quadratic": ["train.reweight.strategy=quadratic"],
    "hard focus (card's 'uniform' g)": ["train.reweight.strategy=uniform"],
}
DEFAULT_ARMS = ["uniform (plain mean)", "linupper", "quadratic"]


def build_corpus(args: argparse.Namespace) -> tuple[Path, Path]:
    """(mixture dataset, clean held-out dataset with the mixture's tokenizer)."""
    mix, clean = args.work / "mixture", args.work / "heldout"
    if (mix / "manifest.json").is_file() and (clean / "manifest.json").is_file():
        return mix, clean
    text_dir = args.work / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    docs, words = [], 0
    sources = resolve_source(args.babylm)
    per_source = args.natural_words // len(sources)
    for source in sources:  # the first words of every source, in equal parts
        taken = 0
        for doc in source.documents(max_doc_words=128):
            docs.append(doc.text)
            taken += doc.words
            if taken >= per_source:
                break
        words += taken
    rng = random.Random(args.seed)
    easy = rng.sample(docs, args.easy_passages)  # a few natural passages, to be memorised
    easy_words = sum(len(d.split()) for d in easy)
    copies = round(args.dup_fraction / (1 - args.dup_fraction) * words / easy_words)
    (text_dir / "natural.txt").write_text("\n".join(docs) + "\n")
    (text_dir / "easy.txt").write_text("\n".join(easy * max(copies, 1)) + "\n")
    prepare([str(text_dir)], mix, budget_words=None, vocab_size=args.vocab_size,
            valid_fraction=0.01, seed=args.seed, overwrite=True)  # fmt: skip
    prepare([str(args.heldout)], clean, budget_words=args.heldout_words, valid_fraction=0.0,
            tokenizer_path=mix / "tokenizer.json", seed=args.seed, overwrite=True)  # fmt: skip
    return mix, clean


def clean_loss(run: Path, data: Path, seq_len: int, max_windows: int, device: str) -> float:
    """Mean token cross-entropy of the run's model on the clean held-out windows."""
    model = load_model(run, device).model
    return token_nll(model, TokenStore(data, "train"), seq_len, max_windows=max_windows)["loss"]


def overhead(steps: int, threads: int) -> None:
    """Step time of the plain fused loss vs the two reweighting paths, interleaved step by step
    (mini model, batch 32 x 128, vocab 8192, random ids)."""
    import statistics
    from types import SimpleNamespace

    from thrifty.config import ModelConfig
    from thrifty.models.transformer import Transformer
    from thrifty.objectives.reweighting import Reweighting

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="mini", vocab_size=8192, max_seq_len=256))
    objective = OBJECTIVES.build({"name": "causal_lm"}, model)
    rw = Reweighting(SimpleNamespace(strategy="linupper", temperature=1.0, delta=1.0))
    ids = torch.randint(6, 8192, (32, 129))

    def step(batch_of) -> None:
        objective(batch_of()).loss.backward()
        model.zero_grad(set_to_none=True)

    contenders = {
        "plain mean (fused head)": lambda: Batch(ids),
        "linupper, one pass (token_term)": lambda: Batch(ids, reweight=rw),
        "linupper, probe + weighted pass": lambda: Batch(
            ids, rw.probe_weights(objective, Batch(ids))
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(2):  # warm-up
        for make in contenders.values():
            step(make)
    for _ in range(steps):
        for name, make in contenders.items():
            start = time.perf_counter()
            step(make)
            times[name].append(time.perf_counter() - start)
    plain = statistics.median(times["plain mean (fused head)"])
    print("| step | median s | vs plain |\n|---|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t):.3f} | {statistics.median(t) / plain:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--babylm", type=Path, help="natural text (BabyLM files)")
    ap.add_argument("--heldout", type=Path, help="clean held-out text")
    ap.add_argument("--work", type=Path, default=Path("bench-runs/reweight_check"))
    ap.add_argument("--natural-words", type=int, default=700_000)
    ap.add_argument("--dup-fraction", type=float, default=0.3)
    ap.add_argument("--easy-passages", type=int, default=20)
    ap.add_argument("--heldout-words", type=int, default=200_000)
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, choices=list(ARMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--seed", type=int, default=0, help="corpus seed")
    ap.add_argument("--eval-windows", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    ap.add_argument("--overhead", action="store_true", help="only time the reweighting paths")
    ap.add_argument("--overhead-steps", type=int, default=10)
    args = ap.parse_args()
    if args.overhead:
        return overhead(args.overhead_steps, args.threads or 2)
    if args.babylm is None or args.heldout is None:
        ap.error("--babylm and --heldout are required (except with --overhead)")

    mix, clean = build_corpus(args)
    results = []
    for seed in args.seeds:
        for arm in args.arms:
            name = arm.split()[0].replace("'", "") + f"-s{seed}"
            cfg = load_config(None, [
                *ARMS[arm], f"train.reweight.temperature={args.temperature}",
                "model.size=nano", f"model.d_model={args.d_model}", f"model.n_layers={args.layers}",
                "model.n_heads=4", f"model.max_seq_len={args.seq_len}",
                f"data.seq_len={args.seq_len}", f"data.path={mix}",
                f"train.batch_size={args.batch_size}", f"train.lr={args.lr}",
                "train.warmup_steps=50", f"train.max_epochs={args.epochs}", "train.eval_every=0",
                "train.log_every=100", "train.checkpoint_every=0", f"train.seed={seed}",
                "train.peak_flops=1e11",  # MFU is not reported; measuring the peak costs time
                f"train.device={args.device}", f"runs_dir={args.work / 'runs'}", f"name={name}",
                *([f"train.threads={args.threads}"] if args.threads else []),
            ])  # fmt: skip
            start = time.perf_counter()
            summary = train(cfg, resume="auto")
            row = {"arm": arm, "seed": seed, "train_s": time.perf_counter() - start}
            row["words"] = summary["words_seen"]
            row["mixture_val_loss"] = summary.get("val_loss", float("nan"))
            row["clean_loss"] = clean_loss(
                cfg.run_dir, clean, args.seq_len, args.eval_windows, args.device
            )
            results.append(row)
            print(json.dumps(row), flush=True)
    print_table(results, args.out)


def print_table(results: list[dict], out: Path | None) -> None:
    base = {r["seed"]: r["clean_loss"] for r in results if r["arm"].startswith("uniform")}
    lines = [
        "| strategy | seed | clean held-out loss | vs uniform | mixture val loss | words "
        "| train s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        delta = r["clean_loss"] - base[r["seed"]] if r["seed"] in base else float("nan")
        lines.append(
            f"| {r['arm']} | {r['seed']} | {r['clean_loss']:.4f} | {delta:+.4f} | "
            f"{r['mixture_val_loss']:.4f} | {r['words']:,.0f} | {r['train_s']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    if out:
        out.write_text(table + "\n")


if __name__ == "__main__":
    main()
