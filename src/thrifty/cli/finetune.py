"""``thrifty finetune RUN --task rte``: (Super)GLUE fine-tuning with BabyLM's defaults.

Writes ``<run>/eval/finetune_<task>.json`` with per-seed and mean ± std metrics, the settings,
and the run's ledger; progress per epoch goes to stderr.
"""

from __future__ import annotations

import argparse

from thrifty.errors import UserError


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not seeds:
        raise UserError("--seeds: give at least one seed")
    return seeds


def add_training_args(p: argparse.ArgumentParser, lr: float = 5e-5) -> None:
    """Options shared with ``thrifty label-efficiency``."""
    p.add_argument("--data-root", help="data folder (default: $THRIFTY_DATA)")
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr})")
    p.add_argument("--batch-size", type=int, default=64, help="examples per step (default 64)")
    p.add_argument("--max-epochs", type=int, default=10, help="most epochs (default 10)")
    p.add_argument("--patience", type=int, default=3, help="epochs without gain (default 3)")
    p.add_argument("--max-seq-len", type=int, help="tokens per input (default: the model's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")


# The tasks of thrifty.eval.finetune.tasks.TASKS (a test keeps the two equal), named here so
# that building the parser does not import the evaluation package and torch with it: `thrifty
# --help` and every command's bad-argument exit stay fast. An unknown name is refused when
# the command runs, with the closest known one.
TASK_NAMES = ("boolq", "cola", "mnli", "mrpc", "multirc", "qqp", "rte", "sst2", "wsc")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a run on a (Super)GLUE task",
        description="Fine-tune a run (latest checkpoint) or a checkpoint folder on a "
        "classification task and report the best validation epoch, over seeds. Inputs are "
        "'<s> A' or '<s> A <sep> B'; causal backbones read the last real token, masked and "
        "hybrid ones read <s> with bidirectional attention.",
    )
    p.add_argument("run", help="run folder or checkpoint folder")
    p.add_argument("--task", required=True, help=f"task name: {', '.join(TASK_NAMES)}")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--max-train-examples", type=int, help="stratified subsample of the train set")
    p.add_argument(
        "--random-init", action="store_true", help="fresh weights of the same architecture"
    )
    p.add_argument("--out", help="result JSON (default: <run>/eval/finetune_<task>.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar over seeds and epochs")
    add_training_args(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from thrifty.eval.finetune import finetune_task

    result = finetune_task(
        args.run,
        args.task,
        data_root=args.data_root,
        seeds=parse_seeds(args.seeds),
        lr=args.lr,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        patience=args.patience,
        max_train_examples=args.max_train_examples,
        max_seq_len=args.max_seq_len,
        pretrained=not args.random_init,
        device=args.device,
        threads=args.threads,
        out=args.out,
        progress=not args.quiet,
    )
    metric = result["metric"]
    for row in result["per_seed"]:
        print(f"seed {row['seed']}: {metric} {row[metric]:.4f} (best epoch {row['best_epoch']})")
    mean, std = result["mean"], result["std"]
    print(
        f"{result['task']}: "
        + ", ".join(f"{m} {mean[m]:.4f} ± {std[m]:.4f}" for m in result["metrics"])
        + f" over {len(result['seeds'])} seed(s)"
    )
    print(f"wrote {result['path']}")
    return 0
