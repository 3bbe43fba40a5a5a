"""`thrifty code-task`: prepare Python files as plain code, obfuscation pairs or DOBF maps
(ObscuraCoder, Paul et al. 2025; DOBF, Lachaux et al. 2021). See ``thrifty.data.code_task``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thrifty.data.code_task import FORMATS, check_task


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `code-task` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "code-task",
        help="prepare Python files as plain code, obfuscation pairs or DOBF name maps",
        description="Read every *.py file under PY_DIR ('stdlib': this interpreter's standard "
        "library), make each one's obfuscated twin (names renamed to v1/f1/c1), hold out a "
        "seeded share of the files as plain-code validation, and prepare the dataset folder "
        "--out: plain files, plus 'obf <sep> orig' / 'orig <sep> obf' pairs (grounded) or "
        "'obf <sep> v1 name1 ...' maps (dobf) making up --ratio of the training tokens.",
    )
    p.add_argument("corpus", metavar="PY_DIR", help="folder of Python files, or 'stdlib'")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset to create")
    p.add_argument("--format", default="plain", metavar="F", help=f"one of {', '.join(FORMATS)}")
    p.add_argument(
        "--ratio",
        type=float,
        default=0.3,
        metavar="R",
        help="share of training tokens in pairs, in (0, 1) (grounded, dobf)",
    )
    p.add_argument(
        "--seq-len",
        type=int,
        default=128,
        metavar="N",
        help="the training data.seq_len: no pair crosses a window of N tokens",
    )
    p.add_argument(
        "--budget-words",
        type=int,
        default=None,
        metavar="N",
        help="whole files in a seeded order, at most N words (default: all)",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.05,
        metavar="F",
        help="share of files held out as plain-code validation",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of every choice")
    p.add_argument("--vocab-size", type=int, default=8192, metavar="N", help="BPE vocabulary")
    p.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        metavar="PATH",
        help="reuse this tokenizer (another arm's tokenizer.json)",
    )
    p.add_argument("--keep-docstrings", action="store_true", help="keep docstrings in twins")
    p.add_argument("--keep-comments", action="store_true", help="keep comments in twins")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--quiet", action="store_true", help="no summary")
    p.set_defaults(func=run)
    q = subparsers.add_parser(
        "code-probe",
        help="probe a code model on a code-task dataset's held-out files",
        description="Held-out plain-code loss, identifier recovery (greedy names after "
        "'obf <sep>', with the original or the name map as continuation) and the "
        "swapped-statements likelihood probe, for the latest checkpoint of RUN on the held-out "
        "files of --data; printed and written to RUN/eval/code_probes.json.",
    )
    q.add_argument("run", type=Path, metavar="RUN", help="run folder or checkpoint")
    q.add_argument("--data", type=Path, required=True, metavar="DIR", help="code-task dataset")
    q.add_argument("--units", type=int, default=60, metavar="N", help="held-out units to probe")
    q.add_argument("--swaps", type=int, default=150, metavar="N", help="functions to swap")
    q.set_defaults(func=run_probe)
    return p


def run(args: argparse.Namespace) -> int:
    ratio = 0.0 if args.format == "plain" else args.ratio
    check_task(args.format, ratio, args.seq_len, args.valid_fraction)  # before reading files

    from thrifty.data.code_task import prepare_code

    manifest = prepare_code(
        args.corpus,
        args.out,
        fmt=args.format,
        ratio=ratio,
        seq_len=args.seq_len,
        budget_words=args.budget_words,
        valid_fraction=args.valid_fraction,
        seed=args.seed,
        vocab_size=args.vocab_size,
        tokenizer_path=args.tokenizer,
        strip_docstrings=not args.keep_docstrings,
        strip_comments=not args.keep_comments,
        overwrite=args.overwrite,
    )
    if not args.quiet:
        task, words = manifest["code_task"], manifest["words"]
        tokens, files = task["tokens"], task["files"]
        print(f"prepared {args.out} ({args.format}) from {task['corpus']}")
        print(
            f"  files: {files['train']:,} train, {files['valid']:,} held out, "
            f"{len(task['skipped']):,} skipped"
        )
        print(
            f"  train tokens: {tokens['plain']:,} plain code, {tokens['pairs']:,} in "
            f"{task['units']['paired']:,} pairs, {tokens['pad']:,} padding"
        )
        derived = sum(manifest["ledger"]["derived_words"].values())
        print(
            f"  words: {words['train']:,} train ({derived:,} derived, not charged), "
            f"{words['valid']:,} valid; train with data.seq_len={args.seq_len}"
        )
    return 0


def run_probe(args: argparse.Namespace) -> int:
    import json

    from thrifty.atomic import write_text_atomic
    from thrifty.data.tokens import load_manifest
    from thrifty.eval import code_probes
    from thrifty.runs import load_model

    seq_len = int(load_manifest(args.data).get("code_task", {}).get("seq_len", 0))
    files = code_probes.held_out_files(args.data)  # UserError for a dataset of another kind
    loaded = load_model(args.run)
    tok, model = loaded.tokenizer(), loaded.model
    units = code_probes.probe_units(files, tok, seq_len, args.units)
    swaps = code_probes.swap_pairs(files, tok, seq_len, args.swaps)
    result = {
        "checkpoint": str(loaded.checkpoint),
        "data": str(args.data),
        "plain_loss": code_probes.plain_loss(model, tok, files, seq_len),
        "recovery_pair": code_probes.identifier_recovery(model, tok, units, "pair"),
        "recovery_map": code_probes.identifier_recovery(model, tok, units, "map"),
        "swap_accuracy": code_probes.swap_accuracy(model, tok, swaps),
        "n_units": len(units),
        "n_swaps": len(swaps),
        "ledger": loaded.ledger(),
    }
    out = loaded.run_dir / "eval" / "code_probes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    for key in ("plain_loss", "recovery_pair", "recovery_map", "swap_accuracy"):
        print(f"{key}: {result[key]:.4f}")
    print(f"written to {out}")
    return 0
