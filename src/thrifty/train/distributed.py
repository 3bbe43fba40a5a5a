"""Data parallelism under ``torchrun``: the only importer of ``torch.distributed`` besides
``sharding.py`` (FSDP, ``train.parallel=fsdp``).

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
        if device.type == "cuda":  # NCCL's communicator binds to the current device
            torch.cuda.set_device(device)
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
    mean over ranks, in one flat all-reduce.

    A parameter that got no gradient on some rank (an unused expert, a part of the batch this
    rank had no rows of) counts as zero there; one that got none on any rank keeps ``None``, as
    it would on one process, so the optimizer skips it the same way at every world size.
    """
    n = world()[1]
    if n == 1:
        return
    unique = {id(p): p for module in modules for p in module.parameters() if p.requires_grad}
    params = list(unique.values())
    if not params:
        return
    device = params[0].device
    parts = [p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params]
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=parts[0].dtype)
    flat = torch.cat([*parts, has_grad.to(device)])
    dist.all_reduce(flat)
    flat /= n
    seen = flat[-len(params) :].cpu() > 0
    offset = 0
    for p, got in zip(params, seen.tolist(), strict=True):
        if got:
            p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def all_gather(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` (same shape on each) concatenated along dim 0 in rank order; identity
    on one process. For per-sample losses that must be normalised over the global batch."""
    n = world()[1]
    if n == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(n)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def all_gather_rows(t: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Every rank's rows of ``t`` (dim 0 may differ between ranks) in rank order, and how many
    came from each rank."""
    n = world()[1]
    if n == 1:
        return t, [len(t)]
    sizes = all_gather(torch.tensor([len(t)], device=t.device)).tolist()
    if max(sizes) == 0:
        return t, sizes
    padded = t.new_zeros((max(sizes), *t.shape[1:]))
    padded[: len(t)] = t
    parts = all_gather(padded).split(max(sizes))
    return torch.cat([part[:k] for part, k in zip(parts, sizes, strict=True)]), sizes


class _GatherRows(torch.autograd.Function):
    """All ranks' rows, differentiable: the backward pass sums every rank's gradient for the
    gathered tensor and keeps this rank's rows. Written here rather than taken from
    ``torch.distributed.nn.functional.all_gather`` because gloo has no reduce-scatter (that
    version emulates it with all-to-all per tensor); one all-reduce works on every backend."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:
        ctx.sizes, ctx.rank = sizes, rank
        padded = t.new_zeros((max(sizes), *t.shape[1:]))
        padded[: len(t)] = t
        parts = all_gather(padded).split(max(sizes))
        return torch.cat([part[:k] for part, k in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gather_rows_with_grad(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's rows of ``t`` in rank order, with gradients flowing back to each rank's own
    rows, and where this rank's rows start: what a contrastive loss needs to compare its rows
    with the whole global batch (``thrifty.objectives.cross_rank``)."""
    rank, n = world()
    if n == 1:
        return t, 0
    sizes = all_gather(torch.tensor([len(t)], device=t.device)).tolist()
    return _GatherRows.apply(t, sizes, rank), sum(sizes[:rank])


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Elementwise sum of ``t`` over ranks (a new tensor; ``t`` itself on one process)."""
    if world()[1] == 1:
        return t
    out = t.clone()
    dist.all_reduce(out)
    return out


def mean(value: float) -> float:
    """Average a scalar over ranks (identity on one process)."""
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / world()[1]


def mean_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Average each metric over the ranks that report it (a GPT-BERT rank without causal rows
    has no ``causal_loss``); the keys in first-seen rank order. Identity on one process."""
    if world()[1] == 1:
        return dict(metrics)
    every: list[dict[str, float]] = [{} for _ in range(world()[1])]
    dist.all_gather_object(every, metrics)  # small dicts of floats between thrifty's own ranks
    keys = list(dict.fromkeys(k for d in every for k in d))
    return {k: sum(d[k] for d in every if k in d) / sum(k in d for d in every) for k in keys}


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        # every rank out of its last collective first: a rank tearing gloo down while a peer
        # still talks to it can abort that peer (seen as "terminate called" on exit)
        barrier()
        dist.destroy_process_group()
