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
        """The term on this rank alone (0 where it has no units)."""
        return self.total / self.count if self.count > 0 else self.total * 0.0


def combine(terms: dict[str, LossTerm]) -> torch.Tensor:
    """Σ weight · value of terms on one rank: the loss as one process sees it."""
    return sum(t.weight * t.value for t in terms.values())
