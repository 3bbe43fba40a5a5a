"""``finetune_task``: fine-tune a run's checkpoint on one task over several seeds, write JSON.

The number reported per seed is the primary metric of the best validation epoch, evaluated on
that same ``valid`` split — the BabyLM convention (the pipeline's predict file is its valid
file), so it is an optimistic estimate; the label-efficiency protocol keeps its held-out set
apart. The result carries the run's ledger and checkpoint step, like every thrifty number.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError
from thrifty.eval.finetune.classifier import build_classifier, encode
from thrifty.eval.finetune.subsample import stratified_subsample
from thrifty.eval.finetune.tasks import data_root as resolve_root
from thrifty.eval.finetune.tasks import get_task, read_split
from thrifty.eval.finetune.trainer import Settings, fit
from thrifty.progress import progress_bar


def input_length(loaded, requested: int | None) -> int:
    """Tokens per input: ``requested`` or the model's max_seq_len, which it may not exceed."""
    limit = loaded.cfg.model.max_seq_len
    if requested is not None and not 4 <= requested <= limit:
        raise UserError(f"--max-seq-len {requested} must be in 4..{limit} (model.max_seq_len)")
    return requested or limit


def mean_std(per_seed: list[dict], names: list[str]) -> tuple[dict, dict]:
    """Mean and sample standard deviation (0 for one seed) of each metric over seeds."""
    mean, std = {}, {}
    for name in names:
        values = np.array([row[name] for row in per_seed], dtype=np.float64)
        mean[name] = float(values.mean())
        std[name] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, std


def finetune_task(
    run_path: str | Path,
    task: str,
    *,
    data_root: str | Path | None = None,
    seeds: tuple[int, ...] | list[int] = (0,),
    lr: float = 5e-5,
    batch_size: int = 64,
    max_epochs: int = 10,
    patience: int = 3,
    max_train_examples: int | None = None,
    max_seq_len: int | None = None,
    pretrained: bool = True,
    device: str = "cpu",
    threads: int | None = None,
    settings: Settings | None = None,
    out: str | Path | None = None,
    write: bool = True,
    progress: bool = False,
) -> dict:
    """Fine-tune the latest checkpoint of ``run_path`` (or a checkpoint folder) on ``task``.

    ``settings`` (a :class:`Settings`) replaces the individual knobs when given.
    ``max_train_examples`` takes a seeded class-stratified subsample (the same for every seed).
    Writes ``<run>/eval/finetune_<task>.json`` (or ``out``) unless ``write`` is False.
    ``progress``: a bar over seeds and epochs on a terminal (thrifty.progress).
    """
    from thrifty.runs import load_model

    spec = get_task(task)
    root = resolve_root(data_root)
    train_examples = read_split(spec, root, "train")  # a missing file fails before loading
    valid_examples = read_split(spec, root, "valid")
    if not seeds:
        raise UserError("give at least one seed")
    if threads:
        torch.set_num_threads(threads)
    s = settings or Settings(
        lr=lr,
        batch_size=batch_size,
        max_epochs=max_epochs,
        patience=patience,
        max_seq_len=max_seq_len,
    )
    loaded = load_model(run_path, device)
    s = replace(s, max_seq_len=input_length(loaded, s.max_seq_len))
    if max_train_examples is not None and max_train_examples < len(train_examples):
        labels = np.array([e.label for e in train_examples])
        keep = stratified_subsample(labels, max_train_examples, seed=0)
        train_examples = [train_examples[i] for i in keep]
    tokenizer = loaded.tokenizer()
    train = encode(tokenizer, train_examples, s.max_seq_len)
    valid = encode(tokenizer, valid_examples, s.max_seq_len)

    per_seed = []
    with progress_bar(f"finetune {task}", len(seeds) * s.max_epochs, progress) as advance:
        for seed in seeds:
            start = time.perf_counter()
            model = build_classifier(
                loaded, spec.num_labels, pretrained=pretrained, seed=seed, dropout=s.dropout
            )
            result = fit(
                model, train, valid, s, seed=seed, select=spec.metric, metrics=spec.metrics,
                tag=f"{task} seed {seed}: ", on_epoch=advance,
            )  # fmt: skip
            advance(s.max_epochs - result.epochs_run)  # the epochs early stopping skipped
            row = {"seed": seed, **{m: result.best[m] for m in spec.metrics}}
            row |= {"valid_loss": result.best["valid_loss"], "best_epoch": result.best_epoch}
            row |= {"epochs_run": result.epochs_run, "seconds": time.perf_counter() - start}
            row["history"] = result.history
            per_seed.append(row)
    mean, std = mean_std(per_seed, list(spec.metrics))
    model_pooling = model.pooling
    output = {
        "task": task,
        "metric": spec.metric,
        "metrics": list(spec.metrics),
        "seeds": list(seeds),
        "per_seed": per_seed,
        "mean": mean,
        "std": std,
        "settings": {
            **asdict(s),
            "pretrained": pretrained,
            "max_train_examples": max_train_examples,
            "n_train": len(train),
            "n_eval": len(valid),
            "eval_split": spec.files["valid"],
            "pooling": model_pooling,
            "attention": "causal" if model.causal else "bidirectional",
            "input": "<s> A" if valid_examples[0].text_b is None else "<s> A <sep> B",
            "device": str(device),
            "threads": torch.get_num_threads(),
        },
        "run": str(loaded.run_dir),
        "checkpoint": loaded.checkpoint.name,
        "step": loaded.state.get("step"),
        "objective": loaded.cfg.objective,
        "ledger": loaded.ledger(),
    }
    if write:
        path = Path(out) if out else loaded.run_dir / "eval" / f"finetune_{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(output, indent=2) + "\n")
        output["path"] = str(path)
    return output
