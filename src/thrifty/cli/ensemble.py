"""``thrifty ensemble RUN_1 … RUN_K``: validation loss (and BLiMP, causal scoring) of the
logit-averaged ensemble of K runs: softmax((1/K) Σ_k logits_k), as in Kim et al. 2025."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble", help="evaluate the logit-averaged ensemble of runs", description=__doc__
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders or checkpoint folders")
    p.add_argument("--data", help="prepared dataset to score (default: the first run's data.path)")
    p.add_argument("--split", choices=("valid", "train"), default="valid", help="which split")
    p.add_argument("--seq-len", type=int, help="window length (default: the first run's)")
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    p.add_argument("--max-windows", type=int, help="score only the first N windows")
    p.add_argument("--blimp", metavar="DIR", help="also score these minimal pairs (causal)")
    p.add_argument("--max-pairs-per-paradigm", type=int, help="seeded BLiMP subsample")
    p.add_argument(
        "--average",
        choices=("logits", "probs"),
        default="logits",
        help="average logits (the paper) or probabilities (for comparison; loss only)",
    )
    p.add_argument(
        "--low-memory",
        action="store_true",
        help="load one member at a time; hidden states go to a temporary folder on disk",
    )
    p.add_argument("--cache-dir", help="where --low-memory keeps hidden states (default: tmp)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", help="write the result JSON here (input for thrifty scaling --x k)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from thrifty.analysis.ensemble import Ensemble, ensemble_blimp, ensemble_loss
    from thrifty.atomic import write_text_atomic

    if args.threads:
        torch.set_num_threads(args.threads)
    ens = Ensemble(
        args.runs, device=args.device, low_memory=args.low_memory, cache_dir=args.cache_dir
    )
    loss = ensemble_loss(
        ens,
        args.data,
        split=args.split,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        max_windows=args.max_windows,
        average=args.average,
    )
    result = {
        "k": ens.k,
        "average": args.average,
        "low_memory": args.low_memory,
        "val_loss": loss.pop("loss"),
        **loss,
        "members": ens.info,
    }
    line = (
        f"K={ens.k} ensemble ({args.average} averaged): {args.split} loss {result['val_loss']:.4f}"
    )
    line += f" over {result['tokens']:,} tokens"
    if args.blimp:
        blimp = ensemble_blimp(ens, args.blimp, max_pairs_per_paradigm=args.max_pairs_per_paradigm)
        result["blimp_causal"] = blimp["macro"]
        result["blimp"] = {k: blimp[k] for k in ("data", "n_pairs", "phenomena", "paradigms")}
        line += f"; BLiMP (causal) macro {100 * blimp['macro']:.1f}%"
    print(line)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")
    return 0
