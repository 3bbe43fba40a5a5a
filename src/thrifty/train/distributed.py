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


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Give every rank rank 0's initial weights."""
    if world()[1] > 1:
        for p in model.parameters():
            dist.broadcast(p.data, src=0)


def average_gradients(model: torch.nn.Module) -> None:
    """Replace each gradient by its mean over ranks (one flat all-reduce)."""
    n = world()[1]
    if n == 1:
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


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
