"""``thrifty eval RUN --task blimp``: zero-shot minimal-pair accuracy of a run's checkpoint.

The result JSON carries the run's ledger and checkpoint step, so every number says which data
budget produced it (DESIGN.md, Evaluation).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError

TASKS = ("blimp",)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="score a run on BLiMP-style minimal pairs",
        description="Score a run (latest checkpoint) or a checkpoint folder on minimal pairs.",
    )
    p.add_argument("run", help="run folder or checkpoint folder")
    p.add_argument("--task", choices=TASKS, default="blimp", help="evaluation task")
    p.add_argument("--data", help="folder of *.jsonl[.gz] pairs (default: config eval.blimp_data)")
    p.add_argument(
        "--backend",
        choices=("auto", "causal", "mntp", "mlm"),
        default=None,
        help="scoring backend (default: config eval.backend; auto = the objective's own)",
    )
    p.add_argument(
        "--variant",
        choices=("original", "within_word_l2r"),
        default="original",
        help="PLL variant for mlm/mntp (Kauf & Ivanova 2023 recommend within_word_l2r)",
    )
    p.add_argument(
        "--max-pairs-per-paradigm",
        type=int,
        help="seeded subsample per paradigm (default: all pairs)",
    )
    p.add_argument("--paradigms", help="comma-separated paradigm names (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample")
    p.add_argument("--out", help="result JSON (default: <run>/eval/blimp_<backend>.json)")
    p.add_argument("--items", help="also write per-pair scores to this .jsonl")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="tokens per forward pass (default: 2048 on CPU, 65536 on GPU)",
    )
    p.set_defaults(func=run)
    return p


def _backend(requested: str, objective: dict) -> str:
    if requested != "auto":
        return requested
    from thrifty.objectives import OBJECTIVES

    return OBJECTIVES.get(objective["name"]).default_backend


def run(args: argparse.Namespace) -> int:
    from thrifty.data.tokenizer import load_tokenizer
    from thrifty.eval.minimal_pairs import evaluate_minimal_pairs, format_table
    from thrifty.runs import load_model

    loaded = load_model(args.run, args.device)
    data = args.data or loaded.cfg.eval.blimp_data
    if not data:
        raise UserError("no minimal-pair data: pass --data DIR or set eval.blimp_data")
    backend = _backend(args.backend or loaded.cfg.eval.backend, loaded.cfg.objective)
    paradigms = (
        [p.strip() for p in args.paradigms.split(",") if p.strip()] if args.paradigms else None
    )
    result = evaluate_minimal_pairs(
        loaded.model,
        load_tokenizer(loaded.run_dir),
        data,
        backend=backend,
        variant=args.variant,
        paradigms=paradigms,
        max_pairs_per_paradigm=args.max_pairs_per_paradigm,
        seed=args.seed,
        items_path=args.items,
        max_batch_tokens=args.max_batch_tokens,
    )
    print(format_table(result))
    result = {
        "task": args.task,
        "run": str(loaded.run_dir),
        "checkpoint": loaded.checkpoint.name,
        "step": loaded.state.get("step"),
        "objective": loaded.cfg.objective,
        "ledger": loaded.ledger(),
        **result,
    }
    suffix = backend if args.variant == "original" else f"{backend}_{args.variant}"
    out = Path(args.out) if args.out else loaded.run_dir / "eval" / f"{args.task}_{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
