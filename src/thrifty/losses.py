"""``LossTerm``: one part of a loss as a sum and a count, so ranks can be added before dividing.

Objectives report their loss as terms (``thrifty.objectives.base.Output``) and model layers
hand auxiliary losses to the loop as terms (``thrifty.models.aux``); the loop sums each term's
total and count over all ranks and divides once (``thrifty.train.global_loss``), so the loss is
a mean over the global batch at every world size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossTerm:
    """One part of a loss: ``weight · total / count``, with total and count summed over ranks."""

    total: torch.Tensor
    """Differentiable sum over this rank's units (token losses, or weight · row loss)."""
    count: torch.Tensor
    """This rank's units: supervised tokens, or the sum of the row weights (detached)."""
    weight: float = 1.0

    @property
    def value(self) -> torch.Tensor:
        """The term on this rank alone (0 where it has no units: the total is then 0).

        Computed on the device, without asking the host whether the count is 0."""
        return self.total / safe_count(self.count).to(self.total.dtype)


def safe_count(count: torch.Tensor) -> torch.Tensor:
    """``count`` where it is positive, else 1: a divisor for a total that is 0 with it."""
    return torch.where(count > 0, count, torch.ones_like(count))


def combine(terms: dict[str, LossTerm]) -> torch.Tensor:
    """Σ weight · value of terms on one rank: the loss as one process sees it."""
    return sum(t.weight * t.value for t in terms.values())
