"""Data parallelism under ``torchrun``: the only importer of ``torch.distributed``.

Detected from the ``RANK`` environment variable as nanoGPT does, so ``thrifty train`` runs as a
single process unchanged when it is absent. Only rank 0 writes files. Gradients are averaged
with one all-reduce after accumulation rather than through DDP hooks, because GPT-BERT runs two
forward passes (causal and masked) before one backward, which DDP's reducer does not allow;
thrifty's models are small enough that overlapping communication with backward buys little.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init(device: torch.device) -> None:
    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def is_main() -> bool:
    return world()[0] == 0


def broadcast_parameters(*modules: torch.nn.Module) -> None:
    """Give every rank rank 0's initial weights."""
    if world()[1] > 1:
        for module in modules:
            for p in module.parameters():
                dist.broadcast(p.data, src=0)


def average_gradients(*modules: torch.nn.Module) -> None:
    """Replace each gradient of ``modules`` (the model, an objective's own networks) by its
    mean over ranks, in one flat all-reduce."""
    n = world()[1]
    if n == 1:
        return
    unique = {id(p): p for module in modules for p in module.parameters()}
    grads = [p.grad for p in unique.values() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_gather(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` (same shape on each) concatenated along dim 0 in rank order; identity
    on one process. For per-sample losses that must be normalised over the global batch."""
    n = world()[1]
    if n == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(n)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def mean(value: float) -> float:
    """Average a scalar over ranks (identity on one process)."""
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / world()[1]


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
