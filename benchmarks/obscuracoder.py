"""Small-scale check of ObscuraCoder's obfuscation grounding (Paul et al. 2025,
papers/obscuracoder.md §4) against plain code and the DOBF baseline (Lachaux et al. 2021).

Prepares a seeded subset of this interpreter's standard library three ways with one tokenizer
(``thrifty code-task``: plain; grounded, 30% of the training tokens in ``obf <sep> orig`` /
``orig <sep> obf`` pairs; dobf, 30% in ``obf <sep> name map``), trains ``configs/code-tiny.yaml``
(2 layers, width 128) on each for several seeds, and probes every model on the held-out files:
plain-code loss, identifier recovery (greedy, after ``obf <sep>``, with the original or the name
map as the continuation) and the swapped-statements likelihood probe. The two mixtures are
trained twice: for as many steps as plain (equal total tokens) and for steps / (plain share of
their tokens) (equal plain-code tokens).

    OMP_NUM_THREADS=1 python benchmarks/obscuracoder.py --threads 1 \\
        --work bench-runs/obscuracoder --out bench-runs/obscuracoder.md

The card expects grounded >> plain at recovering names (trivially), plain-code loss similar at
equal plain tokens and perhaps worse at equal total tokens, and no clear semantic (swap) gain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from thrifty.config import load_config
from thrifty.data.code_task import prepare_code
from thrifty.eval import code_probes
from thrifty.runs import load_model
from thrifty.train.loop import train

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "code-tiny.yaml"
OBJECTIVES = {
    "plain": ["objective.name=causal_lm"],
    "grounded": ["objective.name=dobf", "objective.supervise=all"],
    "dobf": ["objective.name=dobf"],
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", default="stdlib", help="folder of Python files")
    p.add_argument("--budget-words", type=int, default=60_000, help="words of code prepared")
    p.add_argument("--ratio", type=float, default=0.3, help="share of pair tokens")
    p.add_argument("--steps", type=int, default=300, help="steps of the plain arm")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    p.add_argument("--probe-units", type=int, default=120, help="held-out units for recovery")
    p.add_argument("--swap-items", type=int, default=150, help="functions for the swap probe")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--work", type=Path, default=Path("bench-runs/obscuracoder"))
    p.add_argument("--out", type=Path, default=None, help="also write the report (markdown)")
    return p.parse_args()


def prepare_arms(args: argparse.Namespace) -> dict[str, dict]:
    manifests = {}
    for fmt in ("plain", "grounded", "dobf"):
        out = args.work / "data" / fmt
        if not (out / "manifest.json").is_file():
            reuse = None if fmt == "plain" else args.work / "data" / "plain" / "tokenizer.json"
            prepare_code(args.corpus, out, fmt=fmt, ratio=args.ratio, seq_len=args.seq_len,
                         budget_words=args.budget_words, valid_fraction=0.05,
                         vocab_size=args.vocab_size, tokenizer_path=reuse)  # fmt: skip
        manifests[fmt] = json.loads((out / "manifest.json").read_text())
    return manifests


def plain_share(manifest: dict) -> float:
    tokens = manifest["code_task"]["tokens"]
    return tokens["plain"] / (tokens["plain"] + tokens["pairs"] + tokens["pad"])


def train_arm(args, fmt: str, steps: int, seed: int):
    overrides = [
        f"data.path={args.work / 'data' / fmt}", f"runs_dir={args.work / 'runs'}",
        f"name={fmt}-{steps}-s{seed}", f"train.seed={seed}", f"train.max_steps={steps}",
        f"train.batch_size={args.batch_size}", f"data.seq_len={args.seq_len}",
        f"model.max_seq_len={args.seq_len}", "train.eval_every=0",
        f"train.checkpoint_every={steps}", *OBJECTIVES[fmt],
        *([f"train.threads={args.threads}"] if args.threads else []),
    ]  # fmt: skip
    cfg = load_config(CONFIG, overrides)
    train(cfg, resume="auto")  # a finished run is read as it is; a killed one continues
    return cfg


def probe(args, cfg, files, units, swaps) -> dict[str, float]:
    loaded = load_model(cfg.run_dir)
    tok = loaded.tokenizer()
    model = loaded.model
    return {
        "loss": code_probes.plain_loss(model, tok, files, args.seq_len),
        "pair": code_probes.identifier_recovery(model, tok, units, "pair"),
        "map": code_probes.identifier_recovery(model, tok, units, "map"),
        "swap": code_probes.swap_accuracy(model, tok, swaps),
    }


def cell(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    spread = (max(values) - min(values)) / 2
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    manifests = prepare_arms(args)
    from thrifty.data.tokenizer import load_tokenizer

    tok = load_tokenizer(args.work / "data" / "plain")
    files = code_probes.held_out_files(args.work / "data" / "plain")
    units = code_probes.probe_units(files, tok, args.seq_len, args.probe_units)
    swaps = code_probes.swap_pairs(files, tok, args.seq_len, args.swap_items)
    prepared = time.perf_counter() - start
    arms = [("plain", "equal total = equal plain", args.steps)]
    for fmt in ("grounded", "dobf"):
        arms.append((fmt, "equal total tokens", args.steps))
        arms.append(
            (fmt, "equal plain-code tokens", round(args.steps / plain_share(manifests[fmt])))
        )
    rows = []
    for fmt, budget, steps in arms:
        results = [
            probe(args, train_arm(args, fmt, steps, s), files, units, swaps) for s in args.seeds
        ]
        share = plain_share(manifests[fmt])
        tokens = steps * args.batch_size * args.seq_len
        rows.append(
            f"| {fmt} | {budget} | {steps} | {tokens * share / 1e3:.0f}k | {tokens / 1e3:.0f}k | "
            + " | ".join(cell([r[k] for r in results], 3) for k in ("loss", "pair", "map", "swap"))
            + " |"
        )
    seconds = time.perf_counter() - start
    names = [name for u in units for _, name in u.names]
    common = max(set(names), key=names.count)
    plain = manifests["plain"]
    task = plain["code_task"]
    lines = [
        f"## ObscuraCoder: plain vs grounded vs DOBF on {task['corpus']}", "",
        f"{task['files']['train']} training files ({plain['words']['train']:,} words, "
        f"{plain['tokens']['train']:,} tokens), {task['files']['valid']} held out "
        f"({plain['words']['valid']:,} words); {len(task['skipped'])} skipped; vocab "
        f"{plain['vocab_size']}; pairs {args.ratio:.0%} of the mixtures' tokens; seq_len "
        f"{args.seq_len}, batch {args.batch_size}; seeds {args.seeds}; {len(units)} probe units, "
        f"{len(swaps)} swap pairs. Mean ± half-range over seeds. Prepare + probes setup "
        f"{prepared:.0f} s, total {seconds:.0f} s.", "",
        "| arm | budget | steps | plain tokens | total tokens | held-out loss | recovery (pair) "
        "| recovery (map) | swap acc |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        f"Always answering the most frequent name ({common!r}) would recover "
        f"{names.count(common) / len(names):.3f} of the {len(names)} probed names.",
    ]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
