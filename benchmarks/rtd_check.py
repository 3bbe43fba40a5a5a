"""Small-scale check of replaced-token detection: does ELECTRA beat masked LM at equal compute?

ELECTRA's claim (Clark et al. 2020) is that learning from every token makes pretraining more
efficient, most of all for small models; DeBERTaV3 (He et al. 2021) adds that GDES beats plain
embedding sharing. This script trains ``masked_lm``, ``electra`` (es), ``electra`` (gdes) and
``gpt_bert`` on one prepared BabyLM sample with the same training FLOPs — counted by the loop's
FLOPs counter, ELECTRA's generator and heads included, so ELECTRA takes fewer steps and sees
fewer words — then fine-tunes each on RTE, MRPC and SST-2 over several seeds (mean ± std) and
prints a markdown table, plus training loss curves against FLOPs (``--plot``).

Full run (mini models; 1e14 FLOPs is ~4M tokens, about 45-60 min of training per objective
on two CPU cores, plus fine-tuning):

    python benchmarks/rtd_check.py --corpus BABYLM_DIR --data-root DATA_DIR \\
        --budget-words 1000000 --flops 1e14 --seeds 0 1 2 --finetune-examples 2000 \\
        --out rtd_check.md --plot rtd_check.png

Each objective uses its recipe's learning rate and weight decay (ELECTRA: 5e-4 and 0.01, the
paper's; the others 3e-3 and 0.1) unless ``--lr-grid`` / ``--wd-grid`` are given: then every
objective is pretrained at every point of the same grid, the point with the lowest loss of its
own objective on the validation split is kept (each objective judged by its own loss, so the
choice never sees a fine-tuning task), and only that point is fine-tuned. The table states each
objective's learning rate and weight decay either way.

Smoke run (a minute or two):

    python benchmarks/rtd_check.py --corpus BABYLM_DIR --data-root DATA_DIR --model-size nano \\
        --seq-len 64 --budget-words 100000 --flops 3e11 --seeds 0 1 --finetune-examples 64 \\
        --finetune-epochs 1
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from thrifty.config import load_config
from thrifty.data.prepare import load_manifest, prepare
from thrifty.eval.finetune import finetune_task
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES
from thrifty.train.loop import train

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {
    "masked_lm": ("mini-mlm.yaml", []),
    "electra (es)": ("mini-electra.yaml", ["objective.embedding_sharing=es"]),
    "electra (gdes)": ("mini-electra.yaml", ["objective.embedding_sharing=gdes"]),
    "gpt_bert": ("mini-gptbert.yaml", []),
}
TASKS = ("rte", "mrpc", "sst2")


def flops_per_token(cfg, vocab: int) -> float:
    """Training FLOPs per token exactly as the loop counts them (model + objective's own)."""
    torch.manual_seed(0)
    model = Transformer(replace(cfg.model, vocab_size=vocab))
    objective = OBJECTIVES.build(cfg.objective, model, seed=0)
    T = cfg.data.seq_len
    return model.flops_per_token(T, objective.head_fraction()) + objective.extra_flops_per_token(T)


def run_config(
    label: str, args, data: Path, steps: int | None, seed: int, point: dict | None = None
):
    """The objective's recipe at ``args``' scale; ``point`` ({lr, weight_decay}) replaces the
    recipe's optimizer settings (a grid point)."""
    recipe, extra = RECIPES[label]
    point = point or {}
    suffix = "".join(f"-{k[:2]}{v:g}" for k, v in sorted(point.items()))
    overrides = [
        *extra,
        f"data.path={data}",
        f"runs_dir={args.work / 'runs'}",
        f"name={label.replace(' ', '').replace('(', '-').replace(')', '')}-s{seed}{suffix}",
        f"model.size={args.model_size}",
        f"data.seq_len={args.seq_len}",
        f"train.batch_size={args.batch_size}",
        "train.max_epochs=null",
        f"train.max_steps={steps or 1}",
        f"train.warmup_steps={max(1, min(args.warmup_steps, (steps or 1) // 10))}",
        "train.eval_every=0",
        "train.eval_batches=10",
        f"train.log_every={args.log_every}",
        "train.checkpoint_every=0",
        f"train.seed={seed}",
        f"train.device={args.device}",
        *([f"train.threads={args.threads}"] if args.threads else []),
        *([f"train.lr={args.lr}"] if args.lr else []),
        *[f"train.{k}={v}" for k, v in point.items()],
    ]
    if args.model_size == "nano":
        overrides.append(f"model.max_seq_len={max(64, args.seq_len)}")
    return load_config(ROOT / "configs" / recipe, overrides)


def curves(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    return [r for r in rows if "flops" in r]


def pretrain(label: str, args, data: Path, vocab: int, seed: int, point=None) -> dict:
    cfg = run_config(label, args, data, None, seed, point)
    fpt = flops_per_token(cfg, vocab)
    tokens_per_step = cfg.train.batch_size * cfg.data.seq_len
    steps = max(1, int(args.flops // (fpt * tokens_per_step)))
    cfg = run_config(label, args, data, steps, seed, point)
    print(f"{label}: {fpt / 1e6:.2f} MFLOPs/token -> {steps} steps of {tokens_per_step} tokens")
    start = time.perf_counter()
    summary = train(cfg, resume="auto")
    rows = curves(cfg.run_dir)
    return {
        "objective": label,
        "seed": seed,
        "run": str(cfg.run_dir),
        "steps": steps,
        "flops_per_token": fpt,
        "train_flops": rows[-1]["flops"] if rows else fpt * summary["tokens"],
        "words_seen": summary["words_seen"],
        "train_s": time.perf_counter() - start,
        "lr": cfg.train.lr,
        "weight_decay": cfg.train.weight_decay,
        "final_loss": rows[-1]["loss"] if rows else None,
        "val": {k: v for k, v in summary.items() if k.startswith("val_")},
        "curve": [{k: r[k] for k in r if k == "flops" or k.endswith("loss")} for r in rows],
    }


def grid_points(args) -> list[dict] | None:
    """The shared (lr, weight decay) grid, or None: each recipe's own settings."""
    if not (args.lr_grid or args.wd_grid):
        return None
    lrs = args.lr_grid or [None]
    wds = args.wd_grid or [None]
    points = [{"lr": lr, "weight_decay": wd} for lr in lrs for wd in wds]
    return [{k: v for k, v in p.items() if v is not None} for p in points]


def pretrain_tuned(label: str, args, data: Path, vocab: int) -> dict:
    """Pretrain at every grid point and keep the lowest validation loss of the objective's own
    loss (``val_loss``); without a grid, the recipe's settings."""
    points = grid_points(args)
    if points is None:
        return pretrain(label, args, data, vocab, args.pretrain_seed)
    tried = [pretrain(label, args, data, vocab, args.pretrain_seed, p) for p in points]
    best = min(tried, key=lambda r: r["val"].get("val_loss", float("inf")))
    best["grid"] = [
        {"lr": r["lr"], "weight_decay": r["weight_decay"], "val_loss": r["val"].get("val_loss")}
        for r in tried
    ]
    return best


def finetune_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def finetune(run: str, args, pretrained: bool = True) -> dict:
    out = {}
    for task in args.tasks:
        start = time.perf_counter()
        res = finetune_task(
            run,
            task,
            data_root=args.data_root,
            seeds=args.seeds,
            max_train_examples=args.finetune_examples,
            max_epochs=args.finetune_epochs,
            pretrained=pretrained,
            threads=args.threads,
            device=finetune_device(args.device),
            write=pretrained,
        )
        out[task] = {"mean": res["mean"], "std": res["std"], "s": time.perf_counter() - start}
    return out


def cell(res: dict, task: str, metric: str) -> str:
    if task not in res:
        return "–"
    mean, std = res[task]["mean"][metric], res[task]["std"][metric]
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def table(rows: list[dict], tasks) -> str:
    head = (
        "| objective | lr | weight decay | steps | words seen | train TFLOPs | train s "
        "| final loss | val RTD AUC |"
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for task in tasks:
        head += f" {task.upper()} acc |" + (" MRPC F1 |" if task == "mrpc" else "")
        rule += "---:|" + ("---:|" if task == "mrpc" else "")
    lines = [head + " fine-tune s |", rule + "---:|"]
    for r in rows:
        ft = r["finetune"]
        if r.get("steps") is None:  # the no-pretraining baseline
            line = f"| {r['objective']} | – | – | – | 0 | 0 | – | – | – |"
        else:
            auc = r["val"].get("val_rtd_auc")
            line = (
                f"| {r['objective']} | {r['lr']:g} | {r['weight_decay']:g} | {r['steps']} | "
                f"{r['words_seen']:,.0f} | "
                f"{r['train_flops'] / 1e12:.2f} | {r['train_s']:.0f} | {r['final_loss']:.3f} | "
                f"{'–' if auc is None else f'{auc:.3f}'} |"
            )
        for task in tasks:
            line += f" {cell(ft, task, 'accuracy')} |"
            line += f" {cell(ft, task, 'f1')} |" if task == "mrpc" else ""
        lines.append(line + f" {sum(v['s'] for v in ft.values()):.0f} |")
    for r in rows:
        if r.get("grid"):
            tried = ", ".join(
                f"lr {g['lr']:g} wd {g['weight_decay']:g}: {g['val_loss']:.4f}" for g in r["grid"]
            )
            lines.append(f"\n{r['objective']}, validation loss over the grid: {tried}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pre = [r for r in rows if r.get("curve")]
    fig, axes = plt.subplots(1, len(pre), figsize=(4 * len(pre), 3.2), squeeze=False)
    for ax, r in zip(axes[0], pre):
        keys = sorted({k for point in r["curve"] for k in point if k != "flops"})
        for key in keys:
            pts = [(p["flops"] / 1e12, p[key]) for p in r["curve"] if key in p]
            ax.plot(*zip(*pts), label=key)
        ax.set_title(r["objective"])
        ax.set_xlabel("training TFLOPs")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=Path, help="BabyLM text folder (prepared once into --work)")
    ap.add_argument("--data-root", type=Path, help="folder with the GLUE files ($THRIFTY_DATA)")
    ap.add_argument("--work", type=Path, default=Path("bench-runs/rtd_check"))
    ap.add_argument("--budget-words", type=int, default=1_000_000)
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--flops", type=float, default=1e14, help="training FLOPs per objective")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds")
    ap.add_argument("--pretrain-seed", type=int, default=0)
    ap.add_argument("--finetune-examples", type=int, default=2000)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--objectives", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--model-size", default="mini")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--warmup-steps", type=int, default=50)
    ap.add_argument("--lr", type=float, help="one learning rate for all (default: each recipe's)")
    ap.add_argument(
        "--lr-grid", type=float, nargs="+", help="learning rates tried for every objective"
    )
    ap.add_argument(
        "--wd-grid", type=float, nargs="+", help="weight decays tried for every objective"
    )
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (training and fine-tuning)")
    ap.add_argument("--scratch", action="store_true", help="add a no-pretraining baseline row")
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    ap.add_argument("--plot", type=Path, help="write the loss curves (PNG) here")
    args = ap.parse_args()

    data = args.work / "data"
    if not (data / "manifest.json").is_file():
        if args.corpus is None:
            ap.error(f"{data} is not prepared yet: pass --corpus")
        prepare(
            [str(args.corpus)],
            data,
            budget_words=args.budget_words,
            selection="sample",
            vocab_size=args.vocab_size,
            progress=False,
        )
    vocab = load_manifest(data)["vocab_size"]
    rows = []
    for label in args.objectives:
        row = pretrain_tuned(label, args, data, vocab)
        row["finetune"] = finetune(row["run"], args) if args.tasks else {}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "curve"}))
    if args.scratch and rows:
        scratch = {"objective": "no pretraining", "steps": None, "words_seen": 0}
        scratch["finetune"] = finetune(rows[0]["run"], args, pretrained=False)
        rows.append(scratch)
    (args.work / "results.json").write_text(json.dumps(rows, indent=1))
    text = table(rows, args.tasks)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
