"""``thrifty submit RUN --out DIR``: a BabyLM submission, as a git repository.

DIR's main branch holds the final model (a transformers folder), the ledger, the rule check,
the evaluation results and a model card; branches ``chck_1M``, ``chck_2M``, ... hold the
word-mark checkpoints (``thrifty.export.submission``). A run that ``thrifty audit`` fails is
refused (exit 2) and nothing is written. Remote code is chosen by model kind unless
``--remote-code`` / ``--no-remote-code`` says otherwise.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "submit",
        help="write a BabyLM submission: final model on main, word-mark checkpoints as branches",
        description="Write DIR as a git repository of transformers folders: the run's final "
        "model on main (with ledger.json, audit.json, results/ and a model card), and each "
        "word-mark checkpoint (train.babylm_marks) on a branch chck_1M, chck_2M, ... "
        "Refuses runs that break a rule (the verdict of `thrifty audit`).",
    )
    p.add_argument("run", help="run folder")
    p.add_argument("--out", required=True, help="submission folder (a new git repository)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument(
        "--remote-code",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write thrifty's modeling code for trust_remote_code=True (default: exactly when "
        "the model needs it: masked, hybrid and discriminator models, and non-Llama layouts); "
        "--no-remote-code exports GPT-BERT as LlamaForCausalLM, its causal mode only",
    )
    p.add_argument(
        "--ema",
        action="store_true",
        help="submit the moving average of the weights (train.ema_decay) at every revision",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from thrifty.export.submission import submit

    sub = submit(
        args.run, args.out, overwrite=args.overwrite, remote_code=args.remote_code, ema=args.ema
    )
    names = ", ".join(r.name for r in sub.revisions) or "none"
    print(f"wrote {sub.path}: main (step {sub.final.step}) and branches {names}")
    print("rule check: pass (audit.json); card: README.md")
    print(f"results: {len(sub.results)} file(s) in results/" if sub.results else "results: none")
    for left in sub.left_out:
        print(f"note: left out eval/{left['file']} (checkpoint {left['checkpoint']}, not final)")
    if not sub.revisions:
        print("warning: the run kept no word-mark checkpoints (train.babylm_marks=false)")
    if sub.missing_marks:
        gaps = ", ".join(f"{m:,}" for m in sub.missing_marks)
        print(f"warning: no checkpoint at word marks {gaps}")
    if sub.remote_code:
        print("the model holds modeling code: load it with trust_remote_code=True")
    if sub.revisions:
        first = sub.revisions[0].name
        print(
            f"load a branch locally from a checkout (transformers ignores revision= for a "
            f"folder): git clone --branch {first} {sub.path} {first}"
        )
    return 0
