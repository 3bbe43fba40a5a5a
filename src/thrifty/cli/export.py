"""``thrifty export RUN --format hf --out DIR [--remote-code]``: a folder ``transformers`` loads.

Causal models of the Llama layout export as ``LlamaForCausalLM`` (no custom code). Masked and
hybrid models, and every model with another layout (``model.block=parallel``, ``model.mlp=moe``,
``model.attention=moa``), need ``--remote-code``, which writes thrifty's modeling code into the
folder for ``trust_remote_code=True``; without it they are refused, except that a GPT-BERT model
of the Llama layout exports for its causal mode only.
"""

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
    p.add_argument("--format", choices=FORMATS, default="hf", help="hf: a transformers folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--remote-code",
        action="store_true",
        help="masked / hybrid models and non-Llama layouts (parallel blocks, MoE, MoA): write "
        "modeling code for trust_remote_code=True (AutoModelForMaskedLM; AutoModelForCausalLM "
        "for causal and gpt_bert models)",
    )
    p.add_argument(
        "--ema",
        action="store_true",
        help="export the moving average of the weights (train.ema_decay)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from thrifty.export.hf import export_hf

    out = export_hf(
        args.run, args.out, overwrite=args.overwrite, remote_code=args.remote_code, ema=args.ema
    )
    meta = json.loads((out / "thrifty.json").read_text())
    print(f"wrote {out} ({meta['architecture']}, step {meta['step']})")
    if meta["remote_code"]:
        classes = ", ".join(meta["auto_classes"])
        print(f"load with trust_remote_code=True ({classes}); {meta['logits']}")
    elif meta["scoring_backend"] != "causal":
        # The weights load fine, but LlamaForCausalLM always attends causally.
        print(
            f"note: {meta['objective']['name']!r} models are scored with the "
            f"{meta['scoring_backend']!r} backend; LlamaForCausalLM runs them causally only. "
            "Pass --remote-code for the bidirectional (masked) model"
        )
    return 0
