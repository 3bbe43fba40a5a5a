"""``dense``: a plain bias-free linear layer, the reference parameterization."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thrifty.models.linear.base import LINEARS


@LINEARS.register("dense")
class Dense(nn.Linear):
    @dataclass(kw_only=True)
    class Config:
        pass

    def __init__(self, cfg: Config, d_in: int, d_out: int) -> None:
        super().__init__(d_in, d_out, bias=False)

    def reset_parameters(self, std: float | None = None) -> None:
        # nn.Linear's constructor calls this with no argument (its own init, which the
        # transformer then replaces by passing its std).
        if std is None:
            super().reset_parameters()
        else:
            nn.init.normal_(self.weight, 0.0, std)

    def dense_weight(self) -> torch.Tensor:
        """The (d_out, d_in) matrix this layer applies."""
        return self.weight

    def macs_per_token(self) -> int:
        return self.weight.numel()
