"""One optimizer step: its micro-batches, each forward, the global batch's loss, backward, and
the update. The loop around it logs, evaluates and checkpoints.

Nothing here reads a value back from the device: metrics stay 0-dim tensors, summed on the
device, until the loop logs them (``read_metrics``), and a NaN or infinite loss is noted on the
device (``DivergenceWatch``) and raised at the next logging, evaluation or checkpoint step,
before anything is written. On a GPU the host can then queue the next step while this one runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from thrifty.config import TrainConfig
from thrifty.data.source import DataSource
from thrifty.errors import UserError
from thrifty.models import aux
from thrifty.objectives import Batch, Objective, Output, cross_rank
from thrifty.objectives.reweighting import Reweighting
from thrifty.runs import latest_checkpoint
from thrifty.train import distributed
from thrifty.train.curriculum import Phase, samples_before
from thrifty.train.global_loss import global_loss
from thrifty.train.sharding import full_norm
from thrifty.transfer import to_device


def forward_backward(
    objective: Objective,
    batch: Batch,
    *,
    world: int,
    grad_accum: int,
    reweight: Reweighting | None,
    autocast,
) -> tuple[Output, dict]:
    """Run ``objective`` on this rank's share of a micro-batch and backpropagate its part of the
    global loss (scaled for ``grad_accum``); returns the output and the micro-batch's metrics:
    the objective's, the layers' auxiliary terms, the reweighting's and the global ``loss``."""
    # contrastive objectives compare their rows with every rank's (cross_rank)
    with autocast(), cross_rank.across_ranks(distributed.gather_rows_with_grad):
        if reweight is not None:  # weights from the batch's own losses
            reweight.prepare(objective, batch)
        with aux.collect(all_sum=distributed.all_sum) as emitted:  # e.g. load balance
            out = objective(batch)
    rw_metrics = reweight.pop_stats() if reweight is not None else {}
    # normalised over the global batch, the layers' auxiliary terms included
    loss, loss_value, aux_values = global_loss(out, world, emitted.terms)
    (loss / grad_accum).backward()
    return out, out.metrics | emitted.metrics | aux_values | rw_metrics | {"loss": loss_value}


def accumulate_gradients(
    objective: Objective,
    sampler,
    source: DataSource,
    *,
    tc: TrainConfig,
    phase: Phase,
    phases: list[Phase],
    step: int,
    total_steps: int,
    device: torch.device,
    reweight: Reweighting | None,
    autocast,
) -> dict:
    """Backpropagate the ``tc.grad_accum`` micro-batches of ``step``; their mean metrics.

    Every rank draws the whole global micro-batch's indices from the same sampler and takes
    its own slice, so the samples, and the randomness keyed to them, are the same at every
    world size.
    """
    rank, world = distributed.world()
    T, B = phase.seq_len, phase.batch_size
    sums: dict = {}
    for micro in range(tc.grad_accum):
        all_indices, weights = sampler.next_indices(B * world)
        indices = all_indices[rank * B : (rank + 1) * B]
        weights = (
            to_device(weights[rank * B : (rank + 1) * B], device) if weights is not None else None
        )
        fields = source.batch(indices, T)
        batch = Batch.of(
            {k: to_device(v, device) for k, v in fields.items()},
            host=fields,  # what masks are drawn against, without a copy back
            weights=weights,
            progress=step / total_steps,
            micro=step * tc.grad_accum + micro,
            rows=torch.arange(rank * B, (rank + 1) * B),  # places in the global micro-batch
            global_rows=B * world,
            first_sample=samples_before(phases, step, tc.grad_accum, world) + micro * B * world,
        )
        out, micro_metrics = forward_backward(
            objective,
            batch,
            world=world,
            grad_accum=tc.grad_accum,
            reweight=reweight,
            autocast=autocast,
        )
        if out.sample_losses is not None:  # every rank observes the whole global batch
            sampler.observe(all_indices, distributed.all_gather(out.sample_losses))
        for key, value in micro_metrics.items():
            sums[key] = sums.get(key, 0.0) + value / tc.grad_accum
    return sums


def apply_gradients(
    trained: list[torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    grad_clip: float,
    *,
    averaged: bool,
    ema=None,
) -> torch.Tensor:
    """Average the gradients of the ``trained`` networks over the ranks (unless ``averaged``:
    FSDP reduce-scattered them in backward), clip them to ``grad_clip`` (0: no clipping), step
    the optimizer and the weight average ``ema`` of the first network. Returns the gradient
    norm before clipping, a 0-dim tensor on the device (read only when logged)."""
    if not averaged:
        distributed.average_gradients(*trained)
    # the parameters as they are now (densifying and sharding replace them)
    params = [p for module in trained for p in module.parameters()]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip or float("inf"))
    grad_norm = full_norm(grad_norm)  # sharded: a DTensor
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if ema is not None:
        ema.update(trained[0])
    return grad_norm


def read_metrics(sums: dict) -> dict[str, float]:
    """A step's metrics as floats: the one read of the device, at logging steps."""
    return {k: float(v) for k, v in sums.items()}


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


class DivergenceWatch:
    """The first step whose global loss was NaN or infinite, and that loss, kept on the device.

    The global loss is the same on every rank, so every rank raises at the same check.
    """

    def __init__(self) -> None:
        self.step: torch.Tensor | None = None  # 0 while every loss was finite
        self.loss: torch.Tensor | None = None

    def observe(self, step: int, loss: torch.Tensor | float) -> None:
        loss = torch.as_tensor(loss).detach()
        if self.step is None:
            self.step = torch.zeros((), dtype=torch.long, device=loss.device)
            self.loss = torch.zeros((), dtype=loss.dtype, device=loss.device)
        first = ~torch.isfinite(loss) & (self.step == 0)
        self.step = torch.where(first, step, self.step)
        self.loss = torch.where(first, loss, self.loss)

    def check(self, run_dir: Path) -> None:
        """Raise ``TrainingDiverged`` if a loss so far was NaN or infinite (a read)."""
        if self.step is None or int(self.step) == 0:
            return
        loss = float(self.loss)
        assert not math.isfinite(loss)
        raise TrainingDiverged(
            f"loss became {loss} at step {int(self.step)}; stopped. Last good checkpoint: "
            f"{latest_checkpoint(run_dir) or 'none'}. Try a lower train.lr or train.grad_clip"
        )
