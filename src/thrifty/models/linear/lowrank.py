"""``lowrank``: a rank-r factorised linear layer, W = B A.

The pure low-rank baseline that SLTrain (Han et al., NeurIPS 2024, arXiv 2406.02214) compares
against: r·(d_in + d_out) parameters and multiply-accumulates per token instead of d_in·d_out,
at the price of confining W to a rank-r subspace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.bounds import bounded
from thrifty.models.linear.base import LINEARS


def balanced_factor_std(std: float, rank: int) -> float:
    """Std of each factor of B A (rank r) so that the product's entries have std ``std``.

    An entry of B A sums r products of independent factor entries, so its variance is
    r·σ_B²·σ_A². Both factors get the same σ: equal factor scales are where weight decay on
    both factors drives a product anyway, and they give both the same relative Adam step.
    """
    return math.sqrt(std / math.sqrt(rank))


@LINEARS.register("lowrank")
class LowRank(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        rank: int = bounded(32, ge=1)
        """Inner dimension r of W = B A (params and MACs per token: r·(d_in + d_out))."""

    def __init__(self, cfg: Config, d_in: int, d_out: int) -> None:
        super().__init__()
        self.d_in, self.d_out, self.rank = d_in, d_out, cfg.rank
        self.A = nn.Parameter(torch.empty(cfg.rank, d_in))
        self.B = nn.Parameter(torch.empty(d_out, cfg.rank))
        self.reset_parameters()

    def reset_parameters(self, std: float | None = None) -> None:
        # Default: the entry scale of nn.Linear's own init (uniform with bound 1/sqrt(d_in)).
        std = 1.0 / math.sqrt(3 * self.d_in) if std is None else std
        factor_std = balanced_factor_std(std, self.rank)
        nn.init.normal_(self.A, 0.0, factor_std)
        nn.init.normal_(self.B, 0.0, factor_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Through the rank-r bottleneck, never forming W: (..., d_in) -> (..., r) -> (..., d_out)
        return F.linear(F.linear(x, self.A), self.B)

    def dense_weight(self) -> torch.Tensor:
        """The (d_out, d_in) matrix this layer applies."""
        return self.B @ self.A

    def macs_per_token(self) -> int:
        return self.rank * (self.d_in + self.d_out)
