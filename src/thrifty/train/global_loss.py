"""The loss of the global batch from each rank's share, so data parallelism changes nothing.

An objective reports its loss as terms ``weight · total / count`` (``Output.terms``). Each
rank's total and count cover its own rows; the global batch's loss divides the sum of totals by
the sum of counts. Each rank backpropagates ``world · Σ weight · total / global count``, and
the gradient average over ranks (``distributed.average_gradients``) then equals the gradient of
the global loss: what one process computes on the whole batch, and not a mean of per-rank means,
which weighs a rank with few supervised tokens (a short masked row, a rank with no causal rows
of a GPT-BERT batch) as much as one with many.
"""

from __future__ import annotations

import torch

from thrifty.objectives import Output
from thrifty.train import distributed


def global_loss(out: Output, world: int) -> tuple[torch.Tensor, float]:
    """(the loss this rank backpropagates, the global batch's loss value).

    The value is the same on every rank, so a loss that turns NaN or infinite on one rank
    is seen as such by all of them, and they stop together.
    """
    if out.terms is None:  # a plain loss: averaged over ranks as it is
        return out.loss, distributed.mean(out.loss.item())
    terms = list(out.terms.values())  # the same names on every rank (``Output.terms``)
    # one collective: every term's count and (detached) total, summed over ranks
    local = [[t.count.detach().double().cpu(), t.total.detach().double().cpu()] for t in terms]
    summed = distributed.all_sum(torch.stack([torch.stack(pair) for pair in local])).tolist()
    parts, value = [], 0.0
    for term, (count, total) in zip(terms, summed, strict=True):
        if count > 0:
            parts.append(term.weight * term.total / count)
            value += term.weight * total / count
    share = sum(parts) if parts else out.loss * 0.0  # nothing supervised anywhere: no gradient
    return share * world, value
