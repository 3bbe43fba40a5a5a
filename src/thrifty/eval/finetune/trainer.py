"""The fine-tuning loop: AdamW, warmup + cosine, evaluate every epoch, keep the best, stop early.

Defaults are BabyLM's full fine-tuning setting (``babylm_challenge.md`` §3 item 4): learning rate
5e-5, batch 64, at most 10 epochs, validation after every epoch, patience 3, and the weights of
the best validation epoch are the result. The remaining knobs follow the BabyLM 2025 pipeline:
weight decay 0.01, 6% linear warmup, cosine decay to 0.1 of the peak, head dropout 0.1.
A tie on the selection metric goes to the lower validation loss (tiny validation sets tie often).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from thrifty.adamw import adamw
from thrifty.eval.finetune import metrics as M
from thrifty.eval.finetune.classifier import Classifier, Encoded

log = logging.getLogger("thrifty.finetune")


@dataclass(kw_only=True)
class Settings:
    lr: float = 5e-5
    """Peak learning rate."""
    batch_size: int = 64
    """Examples per optimizer step (capped at the training-set size)."""
    max_epochs: int = 10
    """Most passes over the training set."""
    patience: int = 3
    """Stop after this many epochs without a better validation score."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay on matrices (not on norms and biases)."""
    warmup_fraction: float = 0.06
    """Share of all planned steps spent in linear warmup."""
    min_lr_ratio: float = 0.1
    """Final learning rate of the cosine decay, as a fraction of the peak."""
    grad_clip: float = 1.0
    """Global gradient-norm clip (0 disables)."""
    dropout: float = 0.1
    """Dropout before the head's output layer."""
    max_seq_len: int | None = None
    """Tokens per input, <s> and <sep> included (None: the model's max_seq_len)."""
    min_steps_per_epoch: int = 1
    """Stretch an epoch over repeated passes until it has this many steps; keeps 10 epochs of a
    few dozen labels from being 10 optimizer steps (label-efficiency protocol)."""
    eval_batch_size: int = 128
    """Examples per forward pass at evaluation."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding, same examples per epoch)."""


@dataclass
class Fit:
    best_epoch: int
    epochs_run: int
    best: dict
    """Validation metrics and loss of the best epoch."""
    history: list[dict]
    """Per epoch: train_loss, valid_loss and the validation metrics."""


@torch.inference_mode()
def predict(model: Classifier, data: Encoded, batch_size: int = 128) -> np.ndarray:
    """(N, K) logits; examples are length-sorted into batches so padding stays small.

    ``data`` is an ``Encoded`` or any labelled set with ``lengths()`` and ``inputs(idx, device)``
    (``thrifty.eval.image_finetune.ImageSet``); ``model.head.out`` is its output layer."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort(data.lengths(), kind="stable")
    out = np.zeros((len(data), model.head.out.out_features), dtype=np.float64)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        out[idx] = model(*data.inputs(idx, device)).float().cpu().numpy()
    return out


def evaluate(model: Classifier, data: Encoded, names, batch_size: int = 128) -> dict:
    """Metrics by name plus the mean cross-entropy ``loss``."""
    logits = predict(model, data, batch_size)
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(data.labels)).item()
    return {**M.compute(names, data.labels, logits), "loss": loss}


def _passes(n: int, batch: int, s: Settings) -> int:
    return max(1, math.ceil(s.min_steps_per_epoch * batch / n))


def _epoch_order(lengths: np.ndarray, batch: int, s: Settings, rng: np.random.Generator):
    """Shuffled example indices for one epoch, in batches; repeated passes if too few steps.

    With ``group_by_length``, each run of 50 batches is sorted by length before it is cut into
    batches (and the batches shuffled), so a batch pads to a similar length: the same examples
    per epoch, far less padding (Hugging Face's ``group_by_length``).
    """
    n = len(lengths)
    order = np.concatenate([rng.permutation(n) for _ in range(_passes(n, batch, s))])
    if s.group_by_length:
        chunks = [order[i : i + 50 * batch] for i in range(0, len(order), 50 * batch)]
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in chunks])
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    if s.group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _optimizer(model: Classifier, s: Settings) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": rest}]
    device = next(model.parameters()).device
    return adamw(groups, device, lr=s.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def _lr_factor(step: int, total: int, s: Settings) -> float:
    warmup = round(s.warmup_fraction * total)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def fit(
    model: Classifier,
    train: Encoded,
    valid: Encoded,
    settings: Settings,
    *,
    seed: int,
    select: str,
    metrics: tuple[str, ...] | list[str],
    tag: str = "",
    on_epoch: Callable[[], None] | None = None,
) -> Fit:
    """Fine-tune ``model`` in place; on return it holds the weights of the best epoch.
    ``on_epoch`` is called after each epoch (a progress bar); the data as for ``predict``."""
    if not len(train) or not len(valid):
        raise ValueError("fine-tuning needs training and validation examples")
    s = settings
    torch.manual_seed(seed)  # head dropout
    rng = np.random.default_rng(seed)  # data order
    device = next(model.parameters()).device
    batch = min(s.batch_size, len(train))
    total = math.ceil(len(train) * _passes(len(train), batch, s) / batch) * s.max_epochs
    lengths = train.lengths()
    opt = _optimizer(model, s)
    history, best_key, best_state, best_epoch, step = [], None, None, 0, 0
    labels = torch.from_numpy(train.labels).to(device)
    for epoch in range(1, s.max_epochs + 1):
        start, steps = time.perf_counter(), 0
        # summed on the device (in the loss's dtype, as pretraining sums it; mps has no
        # float64) and read once an epoch: no wait for the device each step
        loss_sum = torch.zeros((), device=device)
        model.train()
        for idx in _epoch_order(lengths, batch, s, rng):
            for group in opt.param_groups:
                group["lr"] = s.lr * _lr_factor(step, total, s)
            loss = F.cross_entropy(model(*train.inputs(idx, device)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if s.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
            opt.step()
            loss_sum += loss.detach()
            steps += 1
            step += 1
        result = evaluate(model, valid, metrics, s.eval_batch_size)
        row = {"epoch": epoch, "train_loss": loss_sum.item() / steps}
        row |= {"valid_loss": result.pop("loss")} | result
        history.append(row)
        key = (row[select], -row["valid_loss"])
        if best_key is None or key > best_key:
            best_key, best_epoch = key, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log.info(
            "%sepoch %d/%d  train loss %.4f  valid loss %.4f  %s %.4f  (best %.4f @ %d)  %.1fs",
            tag, epoch, s.max_epochs, row["train_loss"], row["valid_loss"], select,
            row[select], best_key[0], best_epoch, time.perf_counter() - start,
        )  # fmt: skip
        if on_epoch is not None:
            on_epoch()
        if epoch - best_epoch >= s.patience:
            break
    model.load_state_dict(best_state)
    best = {k: v for k, v in history[best_epoch - 1].items() if k not in ("epoch", "train_loss")}
    return Fit(best_epoch, len(history), best, history)
