"""The loss of the global batch from each rank's share, so data parallelism changes nothing.

An objective reports its loss as terms ``weight · total / count`` (``Output.terms``). Each
rank's total and count cover its own rows; the global batch's loss divides the sum of totals by
the sum of counts. Each rank backpropagates ``world · Σ weight · total / global count``, and
the gradient average over ranks (``distributed.average_gradients``) then equals the gradient of
the global loss: what one process computes on the whole batch, and not a mean of per-rank means,
which weighs a rank with few supervised tokens (a short masked row, a rank with no causal rows
of a GPT-BERT batch) as much as one with many. Auxiliary terms the model's layers emitted
(``thrifty.models.aux``) are normalised the same way and added to what is backpropagated; the
reported loss is the objective's alone, so it stays comparable with models that have none.
"""

from __future__ import annotations

import torch

from thrifty.losses import LossTerm
from thrifty.objectives import Output
from thrifty.train import distributed


def _normalised(terms: list[LossTerm]) -> tuple[list[torch.Tensor | None], list[float]]:
    """Each term's differentiable ``weight · total / global count`` (None where the global
    count is 0) and its global value, with one collective for all of them."""
    if not terms:
        return [], []
    local = [[t.count.detach().double().cpu(), t.total.detach().double().cpu()] for t in terms]
    summed = distributed.all_sum(torch.stack([torch.stack(pair) for pair in local])).tolist()
    parts = [t.weight * t.total / c if c > 0 else None for t, (c, _) in zip(terms, summed)]
    values = [t.weight * total / c if c > 0 else 0.0 for t, (c, total) in zip(terms, summed)]
    return parts, values


def global_loss(
    out: Output, world: int, aux: dict[str, LossTerm] | None = None
) -> tuple[torch.Tensor, float, dict[str, float]]:
    """(the loss this rank backpropagates, the global batch's loss value, each aux term's
    global value).

    The values are the same on every rank, so a loss that turns NaN or infinite on one rank
    is seen as such by all of them, and they stop together.
    """
    aux = aux or {}
    own = list(out.terms.values()) if out.terms is not None else []  # same names on every rank
    parts, values = _normalised(own + list(aux.values()))
    aux_values = dict(zip(aux, values[len(own) :], strict=True))
    extra = sum(p for p in parts[len(own) :] if p is not None)
    if out.terms is None:  # a plain loss: averaged over ranks as it is
        return out.loss + extra * world, distributed.mean(out.loss.item()), aux_values
    present = [p for p in parts if p is not None]
    share = sum(present) if present else out.loss * 0.0  # nothing supervised: no gradient
    return share * world, sum(values[: len(own)]), aux_values
