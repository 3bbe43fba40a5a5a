"""The networks a training run updates: the model (the same start on every rank), the objective
and what it trains besides the model, the optimizer, the moving average, and the FSDP shards."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from thrifty.errors import UserError
from thrifty.objectives import OBJECTIVES, Objective
from thrifty.train import distributed
from thrifty.train.compiling import compiled
from thrifty.train.ema import WeightAverage
from thrifty.train.optim import build_optimizer
from thrifty.train.plan import Plan
from thrifty.train.reverse_sparsification import densify_step
from thrifty.train.sharding import (
    load_sharded_optimizer_state,
    refuse_unsupported,
    shard,
    shard_like,
)
from thrifty.train.start import initial_model

log = logging.getLogger("thrifty.train")


@dataclass
class Networks:
    """The model, what the objective trains besides it (ELECTRA's generator) and their update."""

    model: torch.nn.Module
    objective: Objective
    owned: torch.nn.Module | None
    new_optimizer: Callable[[], torch.optim.Optimizer]
    optimizer: torch.optim.Optimizer
    ema: WeightAverage | None
    sharded: bool  # train.parallel=fsdp on more than one process
    dense_from: int | None  # the step Monarch layers turn dense (train.densify_at)

    @property
    def trained(self) -> list[torch.nn.Module]:
        return [self.model] if self.owned is None else [self.model, self.owned]


def build_networks(plan: Plan, device: torch.device, world: int) -> Networks:
    """The model (the same start on every rank), the objective and the optimizer."""
    cfg, tc = plan.cfg, plan.cfg.train
    model = initial_model(cfg).to(device)
    distributed.broadcast_parameters(model)
    objective = OBJECTIVES.build(cfg.objective, compiled(model, tc.compile), seed=tc.seed)
    owned = objective.owned  # networks the objective trains besides the model (ELECTRA)
    if owned is not None:
        distributed.broadcast_parameters(owned)
    if tc.parallel == "fsdp":  # refused at any world size, so a config fails before torchrun
        refuse_unsupported(tc, cfg.objective["name"], owns_networks=owned is not None)

    def new_optimizer():
        return build_optimizer(model, tc, device, extra=owned)

    optimizer = new_optimizer()
    dense_from = densify_step(tc.densify_at, plan.total_steps, model)  # Monarch -> dense
    if tc.ema_decay and dense_from is not None:
        raise UserError(
            "train.ema_decay and train.densify_at do not combine (the average "
            "would mix Monarch factors and dense weights)"
        )
    return Networks(
        model=model,
        objective=objective,
        owned=owned,
        new_optimizer=new_optimizer,
        optimizer=optimizer,
        ema=WeightAverage(model, tc.ema_decay) if tc.ema_decay else None,
        sharded=tc.parallel == "fsdp" and world > 1,  # one process keeps the model whole
        dense_from=dense_from,
    )


def shard_networks(nets: Networks, optim_state: dict | None, world: int, main: bool) -> None:
    """The weights were loaded whole; from here each rank holds a slice of them, of the moving
    average and of the optimizer state."""
    shard(nets.model)
    if nets.ema is not None:
        shard_like(nets.ema.average, nets.model)
    nets.optimizer = nets.new_optimizer()  # fully_shard replaced the parameters it points at
    if optim_state is not None:
        load_sharded_optimizer_state(nets.optimizer, optim_state)
    if main:
        log.info("train.parallel=fsdp: weights, gradients, optimizer state in %d shards", world)
