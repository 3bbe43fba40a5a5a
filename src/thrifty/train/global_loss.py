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

from thrifty.losses import LossTerm, safe_count
from thrifty.objectives import Output
from thrifty.train import distributed


def _normalised(terms: list[LossTerm]) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Each term's differentiable ``weight · total / global count`` (0, with no gradient, where
    the global count is 0: the total is then 0 on every rank) and the global values, with one
    collective for all of them. Everything stays on the device: nothing is read back."""
    if not terms:
        return [], None
    device = terms[0].total.device
    exact = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
    local = torch.stack(
        [torch.stack([t.count.detach(), t.total.detach()]).to(device, exact) for t in terms]
    )
    summed = distributed.all_sum(local)
    counts = safe_count(summed[:, 0])
    parts = [t.weight * t.total / counts[i].to(t.total.dtype) for i, t in enumerate(terms)]
    # weights multiply as Python numbers: a tensor of them would be a copy to the device
    values = torch.stack([t.weight * summed[i, 1] / counts[i] for i, t in enumerate(terms)])
    return parts, values


def global_loss(
    out: Output, world: int, aux: dict[str, LossTerm] | None = None
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(the loss this rank backpropagates, the global batch's loss value, each aux term's
    global value); the values are 0-dim tensors on the device, read at logging steps.

    The values are the same on every rank, so a loss that turns NaN or infinite on one rank
    is seen as such by all of them, and they stop together.
    """
    aux = aux or {}
    own = list(out.terms.values()) if out.terms is not None else []  # same names on every rank
    parts, values = _normalised(own + list(aux.values()))
    aux_values = {name: values[len(own) + i] for i, name in enumerate(aux)}
    extra = sum(parts[len(own) :])
    if out.terms is None:  # a plain loss: averaged over ranks as it is
        value = distributed.all_sum(out.loss.detach()) / world
        return out.loss + extra * world, value, aux_values
    share = sum(parts) if parts else out.loss * 0.0  # the aux terms too; none: no gradient
    value = values[: len(own)].sum() if own else out.loss.detach() * 0.0
    return share * world, value, aux_values
