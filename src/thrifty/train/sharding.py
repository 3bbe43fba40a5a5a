"""Fully sharded data parallelism (``train.parallel: fsdp``) under ``torchrun``.

Plain data parallelism (``distributed.py``) keeps a whole copy of the weights, gradients and
optimizer state on every rank; FSDP2 (``torch.distributed.fsdp.fully_shard``) keeps only a
1/world slice of each and all-gathers a block's weights just before it runs, so a model that
does not fit one device trains on several. FSDP2 rather than the older ``FullyShardedDataParallel``
wrapper because it shards each parameter as a ``DTensor`` in place: the module keeps its class
and parameter names, so the objective, the optimizer groups and the checkpoint keys stay the
ones of a single process. Each block is one unit of communication, the stem and final norm a
last one. Gradients are reduce-scattered (averaged over ranks) in backward, which is what
``distributed.average_gradients`` does for the unsharded model, so the loss scaling of
``global_loss`` keeps one process and many equal.

Checkpoints stay the usual format: the weights and the optimizer state are gathered whole
(``full_tensor``, a collective every rank joins) and rank 0 writes them as a single process
would, so a run resumes on any number of processes and in either mode, and export and
evaluation read it unchanged. The gather needs the whole weights in one process's memory,
which thrifty's sizes allow; ``torch.distributed.checkpoint``'s sharded folders would avoid it
at the price of a second checkpoint format that one process, export and the checksums of
``state.json`` do not read. Loading happens on the whole model before ``shard``; the optimizer
state, read by every rank from the same file, is cut back to each rank's slice. The device mesh
is torchrun's whole process group, so several nodes work through its rendezvous.

Every forward of a sharded model all-gathers weights, so every rank must run the same number
of forward passes per micro-batch: GPT-BERT runs both of its parts on every rank, on no rows
where a rank holds none of one. Refused with fsdp (``refuse_unsupported``), at any world
size so that a config fails before it is launched: ``train.densify_at`` and ``train.compile``
(untested on sharded weights); objectives with networks of their own
(ELECTRA, MCL, ...), whose parameters would mix sharded and whole tensors in one optimizer
and one gradient clip. ``causal_lm``, ``masked_lm`` and ``gpt_bert`` are tested against one
process.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from thrifty.config import TrainConfig
from thrifty.errors import UserError


def refuse_unsupported(tc: TrainConfig, objective_name: str, owns_networks: bool) -> None:
    """A UserError naming the first setting that ``train.parallel=fsdp`` does not support."""
    refused = {
        "train.densify_at": tc.densify_at is not None,
        "train.compile": tc.compile,
        f"objective.name={objective_name}": owns_networks,
    }
    for key, used in refused.items():
        if used:
            raise UserError(
                f"{key} does not combine with train.parallel=fsdp (not supported on sharded "
                "weights); use train.parallel=ddp"
            )


def shard(model: nn.Module) -> None:
    """Shard ``model`` in place over every rank: each block, then the rest (stem, norm)."""
    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)


def _full(t):
    return t.full_tensor() if isinstance(t, DTensor) else t


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole (unsharded) state dict, on every rank: a collective, so every rank calls it."""
    return {k: _full(v.detach()) for k, v in model.state_dict().items()}


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """``optimizer.state_dict()`` with each sharded state tensor gathered whole: what one
    process saves. A collective, so every rank calls it."""
    state = optimizer.state_dict()
    state["state"] = {
        i: {k: _full(v) for k, v in per_param.items()} for i, per_param in state["state"].items()
    }
    return state


def load_sharded_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a whole optimizer state (as ``full_optimizer_state`` or one process saved it) into
    the optimizer of a sharded model: each rank keeps its own slice of every tensor."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        for p in group["params"]:
            if not isinstance(p, DTensor):
                continue
            per_param = optimizer.state.get(p, {})
            for k, v in per_param.items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape:  # not the step count
                    # every rank holds the whole tensor: each cuts its slice, no scatter
                    per_param[k] = distribute_tensor(
                        v.to(p.device), p.device_mesh, p.placements, src_data_rank=None
                    )


def shard_like(tensors: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Cut each whole tensor of ``tensors`` (the moving average of the weights, keyed like the
    model's state) to this rank's slice of the sharded model's tensor of the same name, in
    place. Every rank holds the whole tensors, so each cuts its own slice: no scatter."""
    for name, t in model.state_dict().items():
        if isinstance(t, DTensor) and not isinstance(tensors[name], DTensor):
            whole = tensors[name].to(t.device)
            tensors[name] = distribute_tensor(
                whole, t.device_mesh, t.placements, src_data_rank=None
            )


def full_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` with each sharded one gathered whole: a collective every rank joins."""
    return {k: _full(v) for k, v in tensors.items()}


def full_norm(norm: torch.Tensor) -> torch.Tensor:
    """The gradient norm ``clip_grad_norm_`` returns, whole (over sharded grads it is a DTensor)."""
    return _full(norm)
