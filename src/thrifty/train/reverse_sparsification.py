"""Monarch's reverse sparsification (Dao et al., ICML 2022): train structured, finish dense.

At ``train.densify_at`` of training every Monarch layer becomes a dense layer holding the same
matrix (``thrifty.models.linear.densify``) and training goes on dense. The optimizer is rebuilt
over the new parameter list: parameters that were there before keep their state (moments and
step count); each new dense weight starts without state, as any new parameter would. A
checkpoint written after the switch records ``densified`` in state.json, and everything that
loads it builds the model dense first (``thrifty.runs.build_model``), resume included.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from thrifty.errors import UserError
from thrifty.models.linear.densify import densify

STRUCTURED = ("monarch",)


def densify_step(densify_at: float | None, total_steps: int, model: nn.Module) -> int | None:
    """The step after which the run continues dense (None: never)."""
    if densify_at is None:
        return None
    if not any(getattr(type(m), "registry_name", None) in STRUCTURED for m in model.modules()):
        raise UserError(
            f"train.densify_at={densify_at}: the model has no monarch layer to densify "
            "(set model.linear=monarch, or a model.projections entry)"
        )
    return round(densify_at * total_steps)


def switch_to_dense(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    build: Callable[[], torch.optim.Optimizer],
) -> tuple[torch.optim.Optimizer, list[str]]:
    """Densify ``model`` in place; a new optimizer from ``build`` that keeps the state of every
    parameter that survived, and the dotted names of the layers replaced."""
    names = densify(model, STRUCTURED)
    new = build()
    for group in new.param_groups:
        for p in group["params"]:
            if p in optimizer.state:
                new.state[p] = optimizer.state[p]
    return new, names
