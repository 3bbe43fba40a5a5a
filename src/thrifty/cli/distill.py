"""Distillation through synthetic data (Kim et al. 2025): ``thrifty distill-data TEACHER…``
samples unconditional text at temperature 1 from a run or an ensemble; ``thrifty distill-mix
REAL SYNTHETIC`` prepares a real:synthetic dataset whose ledger charges the teacher. The
student then trains with the normal ``thrifty train ... data.path=MIX``."""

from __future__ import annotations

import argparse

from thrifty.cli.numbers import as_count


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill-data",
        help="sample synthetic text from a teacher run or ensemble",
        description="Sample unconditional text (prompt <s>) from one run or the logit-averaged "
        "ensemble of several into OUT/synthetic.txt (one document per line) and "
        "OUT/synthetic.json (teachers, their ledgers, sampling settings).",
    )
    p.add_argument("teachers", nargs="+", metavar="TEACHER", help="run or checkpoint folders")
    p.add_argument("--words", type=as_count, required=True, help="words to sample, e.g. 500k")
    p.add_argument("--out", required=True, help="folder to create")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--batch", type=int, default=64, help="streams sampled at once")
    p.add_argument("--seq-len", type=int, help="tokens per stream (default: teacher data.seq_len)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy machine)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=run_data)

    p = sub.add_parser(
        "distill-mix",
        help="prepare a real:synthetic training mix for a student",
        description="A prepared dataset: REAL's splits plus synthetic text (RATIO synthetic "
        "words per real training word). Validation stays real. The ledger records the "
        "synthetic words (not charged) and charges the teacher's training words.",
    )
    p.add_argument("real", help="the real prepared dataset (its tokenizer encodes the mix)")
    p.add_argument("synthetic", help="a folder made by thrifty distill-data")
    p.add_argument("--out", required=True, help="dataset folder to create")
    p.add_argument("--ratio", default="1:1", help="REAL:SYNTHETIC words (default 1:1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=run_mix)


def run_data(args: argparse.Namespace) -> int:
    import torch

    from thrifty.analysis.distill import write_synthetic

    if args.threads:
        torch.set_num_threads(args.threads)
    info = write_synthetic(
        args.teachers,
        args.out,
        words=args.words,
        seed=args.seed,
        temperature=args.temperature,
        batch=args.batch,
        seq_len=args.seq_len,
        device=args.device,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {args.out}: {info['words']:,} words in {info['documents']:,} documents "
        f"({info['tokens_sampled']:,} tokens sampled, temperature {info['temperature']:g})"
    )
    return 0


def run_mix(args: argparse.Namespace) -> int:
    from thrifty.analysis.distill import build_mix, parse_ratio
    from thrifty.data.budget import Ledger

    manifest = build_mix(
        args.real, args.synthetic, args.out, ratio=parse_ratio(args.ratio), overwrite=args.overwrite
    )
    d = manifest["distill"]
    print(
        f"wrote {args.out}: {d['real_words']:,} real + {d['synthetic_words']:,} synthetic "
        "training words"
    )
    for line in Ledger.from_dict(manifest["ledger"]).summary_lines():
        print("  " + line)
    return 0
