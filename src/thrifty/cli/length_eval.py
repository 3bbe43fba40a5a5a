"""`thrifty length-eval`: a run's recall accuracy and held-out loss at its training length and
beyond, with and without RoPE context extension (``thrifty.eval.long_context``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from thrifty.cli.recall_task import int_list
from thrifty.errors import UserError

SCALINGS = ("none", "linear", "yarn")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `length-eval` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "length-eval",
        help="recall accuracy and held-out loss at 1x, 2x, 4x the training length",
        description="Score a run past its training length: recall accuracy on the test files "
        "of a `thrifty recall-task` dataset (--recall) and the mean next-token loss on windows "
        "of a prepared dataset's validation split (--text), at each of --lengths, for each "
        "RoPE extension in --rope. Meta-token runs read text with their meta-tokens. Writes "
        "RUN/eval/length.json (or --out).",
    )
    p.add_argument("run", help="run folder or checkpoint")
    p.add_argument("--recall", type=Path, metavar="DIR", help="a recall-task dataset folder")
    p.add_argument("--text", type=Path, metavar="DIR", help="a prepared dataset (valid split)")
    p.add_argument(
        "--lengths",
        type=int_list,
        metavar="L,L",
        help="lengths in tokens (default: 1x, 2x, 4x the run's data.seq_len)",
    )
    p.add_argument(
        "--rope",
        default="none,yarn",
        metavar="S,S",
        help=f"RoPE extensions to try, of {', '.join(SCALINGS)}",
    )
    p.add_argument(
        "--max-windows", type=int, default=64, metavar="N", help="held-out windows per length"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, metavar="FILE", help="result JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    scalings = [s.strip() for s in args.rope.split(",") if s.strip()]
    for s in scalings:
        if s not in SCALINGS:
            raise UserError(f"--rope {s}: choose from {', '.join(SCALINGS)}")
    if args.recall is None and args.text is None:
        raise UserError("nothing to score: give --recall DIR and/or --text DIR")

    import torch

    from thrifty.atomic import write_text_atomic
    from thrifty.data.recall import recall_file
    from thrifty.data.tokens import TokenStore
    from thrifty.eval.long_context import extended, heldout_loss, meta_rate, recall_accuracy
    from thrifty.runs import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.run, args.device)
    train_len = loaded.cfg.data.seq_len
    lengths = args.lengths or [train_len, 2 * train_len, 4 * train_len]
    rate = meta_rate(loaded.cfg.objective)
    tokenizer = loaded.tokenizer()
    files = {n: recall_file(args.recall, n) for n in lengths} if args.recall else {}
    for n, path in files.items():
        if not path.is_file():
            raise UserError(f"{path}: no recall test file for length {n} (thrifty recall-task)")
    store = TokenStore(args.text, "valid") if args.text else None
    result: dict[str, Any] = {
        "run": str(loaded.checkpoint), "train_len": train_len, "meta_rate": rate,
        "recall": {}, "heldout_loss": {}, "ledger": loaded.ledger(),
    }  # fmt: skip
    for scaling in scalings:
        for n in lengths:
            positions = n + (int(n * rate) + 2 if rate else 0)  # room for the meta-tokens
            model = extended(loaded.model, positions, scaling, train_len)
            if files:
                acc = recall_accuracy(model, tokenizer, files[n], rate)
                result["recall"].setdefault(scaling, {})[str(n)] = acc
            if store is not None:
                loss = heldout_loss(model, store, n, rate, args.max_windows)
                result["heldout_loss"].setdefault(scaling, {})[str(n)] = loss
            shown = [f"{k} {result[k][scaling][str(n)]:.4f}" for k in ("recall", "heldout_loss")
                     if scaling in result[k]]  # fmt: skip
            print(f"rope {scaling:6s} length {n:5d}: " + ", ".join(shown))
    out = args.out or Path(loaded.run_dir) / "eval" / "length.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
