"""``thrifty demo``: prepare ~1M words, train a mini GPT-BERT for a few minutes, score BLiMP.

The main job in small: everything a BabyLM-style experiment does, end to end, on a laptop CPU.
Data comes from ``--data`` or ``THRIFTY_DATA`` (a folder with ``babylm/`` text and ``blimp/``
jsonl), or, online with thrifty[hf] installed, from the Hugging Face Hub into a local cache.

It shows what training moved: the validation loss and BLiMP on the same pairs before the first
step (the very weights the run starts from) and after the last, with the difference and its
95% binomial interval, and writes the HTML report of the run. Unless ``--steps`` is given, the
number of steps is sized from a quick measurement of this machine's matmul speed so that the
whole demo stays under ten minutes; the output says what it measured and chose. On a CPU that
multiplies in bf16 much faster than in fp32 (AVX-512 BF16, AMX) it trains under bf16 autocast
(``--precision auto``), 1.5-2.3x the tokens per second, so the same minutes train more steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
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
    "train.babylm_marks=true",  # a checkpoint at 1M words: `thrifty submit` gives it a branch
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
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimizer steps of 32×128 tokens (default: sized from this machine's speed)",
    )
    p.add_argument(
        "--blimp-pairs", type=int, default=100, help="pairs per BLiMP paradigm (max 1000)"
    )
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="training precision (auto: bf16 on a CPU whose bf16 matmul is fast, else fp32)",
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


# Seconds of training the sized demo aims at: with preparing, scoring twice and the report it
# stays under ten minutes on two cores.
TRAIN_SECONDS = 330
# Share of the measured matmul peak a mini training step reaches on CPU, per precision (fp32
# 0.5-0.75 and bf16 0.50-0.53 measured, see BENCHMARKS.md); below that, so that a slow machine
# is not over-estimated.
EXPECTED_MFU = {"fp32": 0.45, "bf16": 0.35}
# bf16 is chosen where its matmul is at least this much faster than fp32's (2.2-3.1x with bf16
# instructions; CPUs without them emulate it, slower than fp32)
BF16_SPEEDUP = 1.5
STEP_TOKENS = 32 * 128


def matmul_peaks(precision: str) -> dict[str, float]:
    """This CPU's matmul FLOP/s in fp32, and in bf16 unless ``precision`` is fp32."""
    import torch

    from thrifty.train.metrics import measure_matmul_peak

    peaks = {"fp32": measure_matmul_peak(n=1024, seconds=0.2)}
    if precision != "fp32":
        peaks["bf16"] = measure_matmul_peak(n=1024, seconds=0.2, dtype=torch.bfloat16)
    return peaks


def choose_precision(precision: str, peaks: dict[str, float]) -> str:
    """``precision``, or for ``auto`` bf16 where its measured matmul is fast enough."""
    if precision != "auto":
        return precision
    return "bf16" if peaks["bf16"] >= BF16_SPEEDUP * peaks["fp32"] else "fp32"


def precision_line(chosen: str, peaks: dict[str, float]) -> str:
    measured = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in peaks.items())
    return f"precision {chosen} (matmul GFLOP/s measured: {measured})"


def sized_steps(flops_per_token: float, precision: str, peak: float) -> tuple[int, str]:
    """Steps that fit ``TRAIN_SECONDS`` at a matmul ``peak`` FLOP/s in ``precision``, and a line
    that says how they were chosen."""
    tokens_per_s = EXPECTED_MFU[precision] * peak / flops_per_token
    steps = int(min(max(TRAIN_SECONDS * tokens_per_s / STEP_TOKENS, 60), 500))
    why = (
        f"sized {steps} steps: {precision} matmul peak {peak / 1e9:.0f} GFLOP/s measured, "
        f"~{tokens_per_s:,.0f} tokens/s expected, ~{TRAIN_SECONDS // 60} min of training"
    )
    return steps, why


def interval(before: float, after: float, n: int) -> float:
    """Half-width of the 95% interval of a difference of two accuracies over ``n`` items each
    (binomial standard errors added in quadrature)."""
    var = before * (1 - before) / n + after * (1 - after) / n
    return 1.96 * math.sqrt(var)


def run(args: argparse.Namespace) -> int:
    import torch

    from thrifty.analysis.report import build_report
    from thrifty.config import load_config
    from thrifty.data.budget import Ledger
    from thrifty.data.prepare import prepare
    from thrifty.data.source import open_source
    from thrifty.data.tokenizer import load_tokenizer
    from thrifty.data.tokens import load_manifest
    from thrifty.eval.minimal_pairs import evaluate_minimal_pairs
    from thrifty.jsonl import read_jsonl
    from thrifty.objectives import OBJECTIVES
    from thrifty.runs import load_model
    from thrifty.train.evaluate import validate
    from thrifty.train.loop import train
    from thrifty.train.start import initial_model, precision

    started = time.perf_counter()
    data = find_data(args.data)
    prepared = args.out / "data" / f"babylm-{args.budget_words}"
    if not (prepared / "manifest.json").is_file():
        sources = training_sources(data / "babylm")
        prepare(sources, prepared, budget_words=args.budget_words, vocab_size=8192)
    t_prepared = time.perf_counter()

    peaks = matmul_peaks(args.precision)
    chosen = choose_precision(args.precision, peaks)
    # on a GPU, auto keeps the loop's own choice (bf16 autocast on CUDA)
    run_precision = "auto" if args.precision == "auto" and torch.cuda.is_available() else chosen
    print(precision_line(run_precision, peaks))

    def demo_config(steps: int):
        every = max(steps // 3, 1)
        overrides = [
            *DEMO_RECIPE,
            f"train.precision={run_precision}",
            f"data.path={prepared}",
            f"runs_dir={args.out / 'runs'}",
            "name=mini-gptbert",
            f"train.max_steps={steps}",
            f"train.eval_every={every}",
            f"train.checkpoint_every={every}",
        ]
        cfg = load_config(None, overrides)
        vocab = load_manifest(prepared)["vocab_size"]
        return replace(cfg, model=replace(cfg.model, vocab_size=vocab))

    cfg = demo_config(args.steps or 1)
    start = initial_model(cfg)  # the weights the run starts from
    objective = OBJECTIVES.build(cfg.objective, start, seed=cfg.train.seed)
    sizing = None
    steps = args.steps
    if steps is None:
        flops = objective.flops_per_token(cfg.data.seq_len)
        steps, sizing = sized_steps(flops, chosen, peaks[chosen])
        print(sizing)
    cfg = demo_config(steps)

    def blimp_of(model) -> dict:
        return evaluate_minimal_pairs(
            model,
            tokenizer,
            data / "blimp",
            backend="causal",
            max_pairs_per_paradigm=args.blimp_pairs,
        )

    tokenizer = load_tokenizer(prepared / "tokenizer.json")
    valid = open_source(prepared, "valid")
    cpu = torch.device("cpu")  # in the precision training validates in on a CPU
    before_loss = validate(objective, valid, cfg, cpu, precision(cfg.train, cpu))
    before = blimp_of(start.eval())
    t_before = time.perf_counter()

    train(cfg, resume="auto")
    t_trained = time.perf_counter()

    loaded = load_model(cfg.run_dir)
    blimp = blimp_of(loaded.model)
    (cfg.run_dir / "eval").mkdir(exist_ok=True)
    (cfg.run_dir / "eval" / "blimp_causal.json").write_text(
        json.dumps({**blimp, "ledger": loaded.ledger()})
    )
    try:
        report = build_report([cfg.run_dir], args.out / "report.html")["html"]
    except UserError as e:  # matplotlib missing: the demo's numbers stand without the page
        report = f"not written ({e})"
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
        was = before["phenomena"][term]
        print(f"  {term:<40} {100 * acc:5.1f}  (before training {100 * was:.1f})")
    print(f"  {'macro average over paradigms':<40} {100 * blimp['macro']:5.1f}")
    n = blimp["n_pairs"]
    moved = blimp["macro"] - before["macro"]
    print("\nwhat training moved (before the first step -> after the last):")
    val_after = val_rows[-1] if val_rows else {}
    for key, value in before_loss.items():
        if key.endswith("loss") and key in val_after:
            after = val_after[key]
            print(f"  {key[4:]:<12} {value:.3f} -> {after:.3f} ({after - value:+.3f})")
    half = interval(before["macro"], blimp["macro"], n)
    print(
        f"  BLiMP macro  {100 * before['macro']:.1f}% -> {100 * blimp['macro']:.1f}% "
        f"({100 * moved:+.1f} points, 95% interval ±{100 * half:.1f})"
    )
    print("\nledger:")
    for line in Ledger.load(cfg.run_dir / "ledger.json").summary_lines():
        print("  " + line)
    print(
        f"\nwall time: prepare {t_prepared - started:.0f}s, before training "
        f"{t_before - t_prepared:.0f}s, train {t_trained - t_before:.0f}s, BLiMP and report "
        f"{t_scored - t_trained:.0f}s, total {t_scored - started:.0f}s"
    )
    if sizing:
        print(sizing)
    print(f"run folder: {cfg.run_dir}  (try: thrifty audit {cfg.run_dir})")
    print(f"report: {report}")
    return 0
