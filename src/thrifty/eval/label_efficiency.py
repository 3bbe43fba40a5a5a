"""Label efficiency: the metric after fine-tuning on N labels, with and without pretraining.

The protocol of Xu et al. 2019 (``er_notes_pretraining.md``): for N on a log grid and several
seeds, fine-tune (a) the pretrained backbone and (b) a randomly initialised backbone of the same
architecture on the same N labelled examples, and score both on a fixed held-out set: the task's
``test`` file where it has one (SST-2: GLUE's real dev set, 872 sentences), else its ``valid``
file. Binary tasks report ROC-AUC of the logit margin, others
accuracy. "Labels saved" is the smallest N at which each arm's mean curve reaches a target
(default: the random-init arm's best mean), interpolated linearly in log N, and their ratio.

Choices that keep the comparison honest:

- The N-label sample is seeded and class-stratified, the same for both arms of a seed, and
  nested across N (``stratified_order``).
- N counts every label used: early stopping selects on a stratified ``valid_fraction`` of the N
  examples and trains on the rest, so the held-out set never informs model selection.
- Both arms share every setting and the same head initialisation; an "epoch" is stretched to at
  least ``min_steps_per_epoch`` optimizer steps so that tiny N still gets trained.
- ``lrs``: each arm tunes its learning rate on the same grid, per seed and N, by the early-
  stopping split's metric (part of the N labels); the held-out set only scores the choice.
- ``pooling``: what the head reads (default: the model kind's; ``mean`` averages the tokens).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError
from thrifty.eval.finetune import (
    Encoded,
    Settings,
    build_classifier,
    encode,
    evaluate,
    fit,
    get_task,
    read_split,
    stratified_order,
    stratified_subsample,
)
from thrifty.eval.finetune.run import input_length
from thrifty.eval.finetune.tasks import data_root as resolve_root

log = logging.getLogger("thrifty.finetune")

ARMS = ("pretrained", "random_init")
DEFAULT_SIZES = (32, 64, 128, 256, 512, 1024, 2048)


def parse_sizes(text: str) -> list[int | str]:
    """'32,64,all' -> [32, 64, 'all']."""
    sizes: list[int | str] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == "all":
            sizes.append("all")
        elif part.isdigit() and int(part) > 0:
            sizes.append(int(part))
        elif part:
            raise UserError(f"--sizes: {part!r} is neither a positive integer nor 'all'")
    if not sizes:
        raise UserError("--sizes: give at least one size")
    return sizes


def split_labels(labels: np.ndarray, sample: np.ndarray, fraction: float, seed: int):
    """(train, valid) indices: a stratified ``fraction`` of ``sample`` held out for selection."""
    k = len(np.unique(labels))
    n_valid = max(k, round(fraction * len(sample)))
    if len(sample) - n_valid < k:
        raise UserError(f"N={len(sample)} is too small to split into training and validation")
    order = stratified_order(labels[sample], seed)
    return np.sort(sample[order[n_valid:]]), np.sort(sample[order[:n_valid]])


def reach(sizes: list[int], means: list[float], target: float) -> float | None:
    """Smallest N where the mean curve reaches ``target``, interpolated in log N (None: never)."""
    for i, (n, m) in enumerate(zip(sizes, means)):
        if m >= target:
            if i == 0:
                return float(n)
            n0, m0 = sizes[i - 1], means[i - 1]
            frac = (target - m0) / (m - m0)
            return float(math.exp(math.log(n0) + frac * (math.log(n) - math.log(n0))))
    return None


def summarize(arms: dict, sizes: list[int], target: float | None) -> tuple[dict, dict]:
    """Mean ± std per arm and N, and the labels each arm needs to reach the target."""
    summary = {}
    for arm, by_n in arms.items():
        summary[arm] = {}
        for n in sizes:
            v = np.array(by_n[str(n)], dtype=np.float64)
            std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            summary[arm][str(n)] = {"mean": float(v.mean()), "std": std, "n": len(v)}
    curve = {arm: [summary[arm][str(n)]["mean"] for n in sizes] for arm in arms}
    source = "user" if target is not None else "random_init best mean"
    if target is None:
        target = max(curve["random_init"])
    saved = {"target": target, "target_source": source}
    for arm in arms:
        saved[arm] = reach(sizes, curve[arm], target)
    ok = saved["pretrained"] and saved["random_init"]
    saved["factor"] = saved["random_init"] / saved["pretrained"] if ok else None
    return summary, saved


def label_efficiency(
    run_path: str | Path,
    task: str = "sst2",
    *,
    data_root: str | Path | None = None,
    sizes: list[int | str] | tuple = DEFAULT_SIZES,
    seeds: list[int] | tuple[int, ...] = (0, 1, 2),
    target: float | None = None,
    valid_fraction: float = 0.2,
    max_eval_examples: int | None = None,
    settings: Settings | None = None,
    lrs: list[float] | None = None,
    pooling: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    out: str | Path | None = None,
    plot: bool = True,
) -> dict:
    """Run the protocol; write ``label_efficiency_<task>.json`` and ``.png`` to ``out``
    (default ``<run>/eval``) and return the JSON as a dict."""
    import torch

    from thrifty.runs import load_model

    spec = get_task(task)
    root = resolve_root(data_root)
    heldout_split = "test" if "test" in spec.files else "valid"
    pool, heldout = read_split(spec, root, "train"), read_split(spec, root, heldout_split)
    metric = "auc" if spec.num_labels == 2 else "accuracy"
    if not 0 < valid_fraction < 1:
        raise UserError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    numeric = sorted({len(pool) if n == "all" else int(n) for n in sizes})
    if numeric[-1] > len(pool):
        raise UserError(f"size {numeric[-1]} exceeds the {len(pool)} {task} training examples")
    if pooling not in (None, "first", "last", "mean"):
        raise UserError(f"pooling {pooling!r}: choose first, last or mean")
    if threads:
        torch.set_num_threads(threads)
    s = settings or Settings(min_steps_per_epoch=10)
    grid = list(lrs) if lrs else [s.lr]
    loaded = load_model(run_path, device)
    s = replace(s, max_seq_len=input_length(loaded, s.max_seq_len))
    tokenizer = loaded.tokenizer()
    if max_eval_examples is not None and max_eval_examples < len(heldout):
        keep = stratified_subsample(np.array([e.label for e in heldout]), max_eval_examples, 0)
        heldout = [heldout[i] for i in keep]
    test = encode(tokenizer, heldout, s.max_seq_len)

    arms: dict = {arm: {str(n): [] for n in numeric} for arm in ARMS}
    runs = []
    for (seed, n), (train, valid) in _samples(tokenizer, pool, numeric, seeds, valid_fraction, s):
        for arm in ARMS:
            build = partial(build_classifier, loaded, spec.num_labels,
                            pretrained=arm == "pretrained", seed=seed, dropout=s.dropout,
                            how=pooling)  # fmt: skip
            row = tuned_arm(build, arm, seed, n, (train, valid, test), metric, s, grid)
            arms[arm][str(n)].append(row[metric])
            runs.append(row)
    summary, saved = summarize(arms, numeric, target)
    result = {
        "task": task,
        "metric": metric,
        "sizes": numeric,
        "seeds": list(seeds),
        "arms": arms,
        "summary": summary,
        "labels_saved": saved,
        "runs": runs,
        "heldout": {"split": spec.files[heldout_split], "n": len(test)},
        "settings": {
            **asdict(s),
            "valid_fraction": valid_fraction,
            "pool": len(pool),
            "max_eval_examples": max_eval_examples,
            "lrs": grid,
            "pooling": pooling or "default",
            "device": str(device),
            "threads": torch.get_num_threads(),
        },
        "run": str(loaded.run_dir),
        "checkpoint": loaded.checkpoint.name,
        "step": loaded.state.get("step"),
        "objective": loaded.cfg.objective,
        "ledger": loaded.ledger(),
    }
    folder = Path(out) if out else loaded.run_dir / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"label_efficiency_{task}.json"
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    result["path"] = str(path)
    result["plot"] = None
    if plot:
        try:
            result["plot"] = str(plot_curve(result, folder / f"label_efficiency_{task}.png"))
        except ImportError:
            log.warning("no plot: it needs matplotlib (pip install 'thrifty[report]')")
    return result


def _samples(tokenizer, pool: list, sizes: list[int], seeds, valid_fraction: float, s: Settings):
    """Yield ((seed, N), (train, valid)) encoded splits of each seed's nested N-label sample."""
    labels = np.array([e.label for e in pool])
    orders = {seed: stratified_order(labels, seed) for seed in seeds}
    needed = np.unique(np.concatenate([order[: sizes[-1]] for order in orders.values()]))
    rows = dict(
        zip(needed.tolist(), encode(tokenizer, [pool[i] for i in needed], s.max_seq_len).ids)
    )
    for seed in seeds:
        for n in sizes:
            split = split_labels(labels, orders[seed][:n], valid_fraction, seed)
            yield (
                (seed, n),
                tuple(Encoded([rows[int(i)] for i in idx], labels[idx]) for idx in split),
            )


def tuned_arm(build, arm: str, seed: int, n: int, data, metric: str, s: Settings, grid) -> dict:
    """Fine-tune a fresh ``build()`` of one arm on one sample at every learning rate of
    ``grid``; the held-out metric of the one whose early-stopping split scored best, and how
    the fits went. ``data``: (train, valid, held-out), as ``fit`` and ``evaluate`` take them."""
    train, valid, test = data
    start = time.perf_counter()
    best, tried = None, {}
    for lr in grid:
        model = build()
        tag = f"seed {seed} N={n} {arm} lr {lr:g}: "
        fitted = fit(model, train, valid, replace(s, lr=lr), seed=seed, select=metric,
                     metrics=(metric,), tag=tag)  # fmt: skip
        tried[f"{lr:g}"] = fitted.best[metric]
        if best is None or fitted.best[metric] > best[1].best[metric]:
            best = (lr, fitted, model)
    lr, result, model = best
    value = evaluate(model, test, (metric,), s.eval_batch_size)[metric]
    seconds = time.perf_counter() - start
    log.info("seed %d  N=%d  %-11s  lr %g  %s %.4f  (%d epochs, %.1fs)",
             seed, n, arm, lr, metric, value, result.epochs_run, seconds)  # fmt: skip
    return {"seed": seed, "n": n, "arm": arm, metric: value, "lr": lr, "valid_by_lr": tried,
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "seconds": seconds}  # fmt: skip


def plot_curve(result: dict, path: Path) -> Path:
    """Metric vs N on a log axis, both arms with ±1 std error bars, the target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes, summary = result["sizes"], result["summary"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for arm, label, marker in (("pretrained", "pretrained", "o"),
                               ("random_init", "random init", "s")):  # fmt: skip
        means = [summary[arm][str(n)]["mean"] for n in sizes]
        stds = [summary[arm][str(n)]["std"] for n in sizes]
        ax.errorbar(sizes, means, yerr=stds, marker=marker, capsize=3, label=label)
    saved = result["labels_saved"]
    ax.axhline(saved["target"], color="grey", linestyle=":", linewidth=1,
               label=f"target {saved['target']:.3f}")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labelled examples N (training + validation)")
    ax.set_ylabel("ROC-AUC" if result["metric"] == "auc" else "accuracy")
    n_seeds = len(result["seeds"])
    ax.set_title(f"{result['task']}: label efficiency ({n_seeds} seeds, mean ± std)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
