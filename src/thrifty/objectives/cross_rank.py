"""The whole global micro-batch for objectives whose loss compares rows with each other.

A contrastive loss (CLIP's InfoNCE, SimCLR, SoftCon) scores each row against every other row
of the batch: its negatives. Split over ranks, a rank holds only its own rows, so the loss with
local negatives would change with the world size. Such an objective passes its features
through ``gather``: inside the loop's training micro-batch under torchrun it returns every
rank's rows in global order (differentiable, ``distributed.gather_rows_with_grad``) and where
this rank's rows start; the objective then computes the loss of its own rows against all of
them, and the global normalisation of ``thrifty.train.global_loss`` makes the step equal the
one-process step on the whole batch. On one process, and in validation (where every rank holds
the whole batch), it is the identity.

The loop binds the collective (``across_ranks``), so objectives never import
``torch.distributed`` (as ``thrifty.models.aux`` binds ``all_sum`` for layers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

Gather = Callable[[torch.Tensor], tuple[torch.Tensor, int]]
_bound: list[Gather] = []


@contextmanager
def across_ranks(gather_fn: Gather) -> Iterator[None]:
    """Make ``gather`` collect every rank's rows while the block runs (one training
    micro-batch)."""
    _bound.append(gather_fn)
    try:
        yield
    finally:
        _bound.pop()


def gather(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(rows of the global micro-batch, index of this rank's first row among them); ``(t, 0)``
    outside ``across_ranks``. Every rank must call it the same number of times."""
    if not _bound:
        return t, 0
    return _bound[-1](t)
