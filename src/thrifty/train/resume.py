"""What a checkpoint holds to resume a run exactly, written and read in one place.

``run_state`` is the ``state.json`` payload of a training checkpoint: where the run stands
(step, tokens, sequence-length phase, sampler position, FLOPs so far, the ledger) and what must
match to continue it (the global batch). ``restore`` puts the weights, optimizer, objective and
random generators back; the loop rebuilds its sampler and counters from the state.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from thrifty.errors import UserError
from thrifty.train.checkpoint import load_ema_weights, load_objective_weights, restore_rng


def run_state(
    *,
    tokens_seen: int,
    rows_per_step: int,
    model_kind: str,
    densified: bool,
    flops,
    phase_index: int,
    epochs_before: float,
    sampler_state: dict,
    ledger: dict,
    word_mark: int | None,
    data_dir: Path,
    manifest_ledger: dict,
) -> dict:
    """The ``state.json`` payload (the step and file checksums are added on save)."""
    return {
        "tokens_seen": tokens_seen,
        "rows_per_step": rows_per_step,
        "model_kind": model_kind,
        "densified": densified,
        "flops_per_token": flops.rate,  # e.g. ELECTRA's generator included
        "flops": flops.state_dict(),
        "phase": phase_index,
        "epochs_before": epochs_before,
        "sampler": sampler_state,
        "ledger": ledger,
        "word_mark": word_mark,
        "data": {"path": str(data_dir), "manifest_ledger": manifest_ledger},
    }


def restore(
    ckpt: Path,
    optim_state: dict,
    rng: dict,
    *,
    model: torch.nn.Module,
    owned: torch.nn.Module | None,
    ema,
    optimizer: torch.optim.Optimizer,
    objective,
) -> None:
    """Load the checkpoint's weights (the model's, the objective's own networks', the moving
    average's), the optimizer state, the objective's generator and the global RNG states."""
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    if owned is not None:
        owned.load_state_dict(load_objective_weights(ckpt))
    if ema is not None:
        ema.load_state_dict(load_ema_weights(ckpt))
    optimizer.load_state_dict(optim_state)
    saved = rng["objective"]  # older checkpoints hold the generator state alone
    objective.load_state_dict(saved if isinstance(saved, dict) else {"generator": saved})
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
