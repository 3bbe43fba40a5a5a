"""``swiglu``: the gated MLP of Llama, down(silu(gate(x)) · up(x)), with gate/up fused."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thrifty.models.linear import make_linear
from thrifty.models.linear.base import matmul_params
from thrifty.models.mlp.base import MLPS
from thrifty.models.mlp.gated_product import gated_product


@MLPS.register("swiglu")
class SwiGLU(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        pass

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        self.d_ff = model.d_ff
        self.gate_up = make_linear(model.linear_for("gate_up"), model.d_model, 2 * model.d_ff)
        self.down = make_linear(model.linear_for("down"), model.d_ff, model.d_model)

    def reset_parameters(self, std: float, out_std: float) -> None:
        self.gate_up.reset_parameters(std)
        self.down.reset_parameters(out_std)

    def flops_per_token(self, seq_len: int) -> float:
        return 6.0 * (matmul_params(self.gate_up) + matmul_params(self.down))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(gated_product(self.gate_up(x)))
