"""``thrifty export RUN --format hf --out DIR``: write a folder that ``transformers`` loads."""

from __future__ import annotations

import argparse

FORMATS = ("hf",)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint for another library",
        description="Export a run (latest checkpoint) or a checkpoint folder.",
    )
    p.add_argument("run", help="run folder or checkpoint folder")
    p.add_argument("--format", choices=FORMATS, default="hf", help="hf: LlamaForCausalLM folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from thrifty.export.hf import export_hf

    out = export_hf(args.run, args.out, overwrite=args.overwrite)
    meta = json.loads((out / "thrifty.json").read_text())
    print(f"wrote {out} (LlamaForCausalLM, step {meta['step']})")
    if meta["scoring_backend"] != "causal":
        # The weights load fine, but LlamaForCausalLM always attends causally.
        print(
            f"note: {meta['objective']['name']!r} models are scored with the "
            f"{meta['scoring_backend']!r} backend; LlamaForCausalLM runs them causally"
        )
    return 0
