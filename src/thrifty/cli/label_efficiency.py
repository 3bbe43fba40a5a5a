"""``thrifty label-efficiency RUN --task sst2``: metric vs number of labels, with and without
pretraining (Xu et al. 2019's protocol; see ``thrifty.eval.label_efficiency``)."""

from __future__ import annotations

import argparse

from thrifty.cli.finetune import TASK_NAMES, add_training_args, parse_seeds
from thrifty.errors import UserError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "label-efficiency",
        help="metric vs number of labels, pretrained vs random init",
        description="For each N, fine-tune the pretrained backbone and a randomly initialised "
        "one of the same architecture on the same stratified N labels (early stopping on a "
        "validation share of those N), score both on the task's held-out valid/dev set (ROC-AUC "
        "for binary tasks, else accuracy), and report how many labels pretraining saves.",
    )
    p.add_argument("run", help="run folder or checkpoint folder")
    p.add_argument("--task", default="sst2", help=f"task: {', '.join(TASK_NAMES)} (default sst2)")
    p.add_argument(
        "--sizes",
        default="32,64,128,256,512,1024,2048",
        help="comma-separated N, 'all' for the whole training set (default 32..2048)",
    )
    p.add_argument(
        "--seeds", default="3", help="a count (3 -> seeds 0,1,2) or a list '0,1,2' (default 3)"
    )
    p.add_argument("--target", type=float, help="target metric (default: random init's best)")
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.2,
        help="share of the N labels held out for early stopping (default 0.2)",
    )
    p.add_argument(
        "--min-steps-per-epoch",
        type=int,
        default=10,
        help="stretch small epochs to this many optimizer steps (default 10)",
    )
    p.add_argument(
        "--max-eval-examples", type=int, help="fixed stratified subsample of the held-out set"
    )
    p.add_argument(
        "--lrs",
        help="learning rates each arm chooses from by its early-stopping split, e.g. "
        "1e-4,3e-4,1e-3 (default: --lr only)",
    )
    p.add_argument(
        "--pooling",
        choices=("first", "last", "mean"),
        help="what the head reads (default: last token for causal models, <s> otherwise)",
    )
    p.add_argument("--out", help="output folder (default: <run>/eval)")
    add_training_args(p)
    p.set_defaults(func=run)
    return p


def parse_lrs(text: str) -> list[float]:
    try:
        lrs = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--lrs {text}: expected numbers like 1e-4,3e-4") from None
    if not lrs or any(not lr > 0 for lr in lrs):
        raise UserError(f"--lrs {text}: learning rates must be positive")
    return lrs


def run(args: argparse.Namespace) -> int:
    from thrifty.eval.finetune import Settings
    from thrifty.eval.label_efficiency import label_efficiency, parse_sizes

    seeds = (
        list(range(int(args.seeds))) if args.seeds.strip().isdigit() else parse_seeds(args.seeds)
    )
    settings = Settings(
        lr=args.lr,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        patience=args.patience,
        max_seq_len=args.max_seq_len,
        min_steps_per_epoch=args.min_steps_per_epoch,
    )
    result = label_efficiency(
        args.run,
        args.task,
        data_root=args.data_root,
        sizes=parse_sizes(args.sizes),
        seeds=seeds,
        target=args.target,
        valid_fraction=args.valid_fraction,
        max_eval_examples=args.max_eval_examples,
        settings=settings,
        lrs=parse_lrs(args.lrs) if args.lrs else None,
        pooling=args.pooling,
        device=args.device,
        threads=args.threads,
        out=args.out,
    )
    metric, summary = result["metric"], result["summary"]
    print(f"{'N':>7}  {'pretrained':>17}  {'random init':>17}   ({metric}, mean ± std)")
    for n in result["sizes"]:
        a, b = summary["pretrained"][str(n)], summary["random_init"][str(n)]
        print(f"{n:>7}  {a['mean']:.4f} ± {a['std']:.4f}  {b['mean']:.4f} ± {b['std']:.4f}")
    saved = result["labels_saved"]

    def fmt(n):
        return "not reached" if n is None else f"{n:.0f}"

    factor = f"{saved['factor']:.2f}x" if saved["factor"] else "n/a"
    print(
        f"labels to reach {metric} {saved['target']:.4f}: pretrained {fmt(saved['pretrained'])}, "
        f"random init {fmt(saved['random_init'])} (factor {factor})"
    )
    print(f"wrote {result['path']} and {result.get('plot')}")
    return 0
