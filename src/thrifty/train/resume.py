"""What a checkpoint holds to resume a run exactly, written and read in one place.

``Position`` is where a run stands between steps (step, tokens, sequence-length phase and its
sampler, FLOPs so far, whether Monarch layers were densified); ``run_state`` is the
``state.json`` payload of a training checkpoint: the position, the ledger and what must match
to continue it (the global batch). ``restore`` puts the weights, optimizer, objective and
random generators back, and ``position_from`` rebuilds the position from the state;
``resume_run`` does both for the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_file

from thrifty.errors import UserError
from thrifty.train.checkpoint import (
    load_ema_weights,
    load_objective_weights,
    load_training_state,
    restore_rng,
)
from thrifty.train.curriculum import Phase
from thrifty.train.metrics import FlopsCount
from thrifty.train.reverse_sparsification import switch_to_dense

if TYPE_CHECKING:
    from thrifty.train.networks import Networks
    from thrifty.train.plan import Plan

log = logging.getLogger("thrifty.train")


@dataclass
class Position:
    """Where a training run stands between steps; the loop advances it."""

    step: int
    tokens_seen: int
    phase: Phase
    sampler: Any  # the phase's sampler (``thrifty.data.samplers``), its own position inside
    flops: FlopsCount
    epochs_before: float = 0.0  # epochs of the samplers of earlier phases
    densified: bool = False  # Monarch layers switched to dense (train.densify_at)

    @property
    def epochs(self) -> float:
        return self.epochs_before + self.sampler.epochs


def run_state(
    at: Position,
    *,
    rows_per_step: int,
    model_kind: str,
    ledger: dict,
    word_mark: int | None,
    data_dir: Path,
    manifest_ledger: dict,
) -> dict:
    """The ``state.json`` payload (the step and file checksums are added on save)."""
    return {
        "tokens_seen": at.tokens_seen,
        "rows_per_step": rows_per_step,
        "model_kind": model_kind,
        "densified": at.densified,
        "flops_per_token": at.flops.rate,  # e.g. ELECTRA's generator included
        "flops": at.flops.state_dict(),
        "phase": at.phase.index,
        "epochs_before": at.epochs_before,
        "sampler": at.sampler.state_dict(),
        "ledger": ledger,
        "word_mark": word_mark,
        "data": {"path": str(data_dir), "manifest_ledger": manifest_ledger},
    }


def position_from(state: dict, plan: Plan, flops_per_token: Callable[[int], float]) -> Position:
    """The position a checkpoint's ``state.json`` records, its sampler where it stopped."""
    phase = plan.phases[state.get("phase", 0)]  # the phase whose sampler the state holds
    sampler = plan.sampler_for(phase)
    sampler.load_state_dict(state["sampler"])
    return Position(
        step=state["step"],
        tokens_seen=state["tokens_seen"],
        phase=phase,
        sampler=sampler,
        flops=FlopsCount(flops_per_token(phase.seq_len), state.get("flops")),
        epochs_before=state.get("epochs_before", 0.0),
        densified=bool(state.get("densified")),
    )


def restore(ckpt: Path, optim_state: dict, rng: dict, nets: Networks) -> None:
    """Load the checkpoint's weights (the model's, the objective's own networks', the moving
    average's), the optimizer state, the objective's generator and the global RNG states."""
    nets.model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    if nets.owned is not None:
        nets.owned.load_state_dict(load_objective_weights(ckpt))
    if nets.ema is not None:
        nets.ema.load_state_dict(load_ema_weights(ckpt))
    nets.optimizer.load_state_dict(optim_state)
    saved = rng["objective"]  # older checkpoints hold the generator state alone
    nets.objective.load_state_dict(saved if isinstance(saved, dict) else {"generator": saved})
    restore_rng(rng)


def check_global_batch(ckpt: Path, state: dict, rows_per_step: int, tc, world: int) -> None:
    """Resuming on another number of processes is exact only with the same global batch."""
    if state.get("rows_per_step", rows_per_step) != rows_per_step:
        raise UserError(
            f"{ckpt} was trained with {state['rows_per_step']} rows per step "
            f"(train.batch_size x train.grad_accum x processes); this run has "
            f"{tc.batch_size} x {tc.grad_accum} x {world} = {rows_per_step}. Keep the "
            "global batch when resuming on another number of processes"
        )


def resume_run(
    ckpt: Path, plan: Plan, nets: Networks, world: int, main: bool
) -> tuple[Position, dict]:
    """Put ``ckpt``'s weights, optimizer, generators and counters back; returns the run's
    position and the optimizer state (a sharded run loads it again into its shards)."""
    state, optim_state, rng = load_training_state(ckpt)
    if state.get("densified"):  # the run had switched to dense before this checkpoint
        nets.optimizer, _ = switch_to_dense(nets.model, nets.optimizer, nets.new_optimizer)
    check_global_batch(ckpt, state, plan.rows_per_step, plan.cfg.train, world)
    restore(ckpt, optim_state, rng, nets)
    at = position_from(state, plan, nets.objective.flops_per_token)
    plan.ledger.words_seen = state["ledger"]["words_seen"]
    if main:
        log.info("resumed from %s (step %d)", ckpt, at.step)
    return at, optim_state
