"""``sltrain``: sparse plus low-rank linear layer, W = (alpha / r)·B A + S.

SLTrain (Han et al., "SLTrain: a sparse plus low-rank approach for parameter and memory
efficient pretraining", NeurIPS 2024, arXiv 2406.02214). S lives on a fixed, uniformly random
support of density δ chosen once at construction; only its values are trained. The cheap
sparse part restores the full-rank spectrum tail that a pure low-rank W lacks, at about
low-rank's parameter count: r·(d_in + d_out) + δ·d_in·d_out.

The forward pass builds the dense W, applies it and drops it; backward rebuilds it from the
factors (the paper's custom autograd function), so only the small factors and the input are
kept between the two passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.bounds import bounded
from thrifty.models.linear.base import LINEARS


def sparse_plus_low_rank(
    B: torch.Tensor, A: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, scale: float
) -> torch.Tensor:
    """W = scale·B A + S, where S holds ``values`` at the flat ``indices`` of (d_out, d_in)."""
    weight = scale * (B @ A)  # (d_out, d_in); bf16 under autocast, hence the cast of values
    # Indices are distinct, so accumulating is a plain add at each position, deterministic.
    weight.view(-1).index_put_((indices,), values.to(weight.dtype), accumulate=True)
    return weight


class SparsePlusLowRankLinear(torch.autograd.Function):
    """y = x Wᵀ with W rebuilt from (B, A, values, indices) in forward and again in backward.

    Only x and the factors are saved, never the dense W. Backward uses G = dYᵀ X (the dense
    weight gradient, alive only inside backward): dB = scale·G Aᵀ, dA = scale·Bᵀ G,
    d values = G at the support, dX = dY W.
    """

    @staticmethod
    def forward(ctx, x, B, A, values, indices, scale):
        ctx.save_for_backward(x, B, A, values, indices)
        ctx.scale = scale
        return F.linear(x, sparse_plus_low_rank(B, A, values, indices, scale))

    @staticmethod
    def backward(ctx, dy):
        x, B, A, values, indices = ctx.saved_tensors
        need_x, need_B, need_A, need_values = ctx.needs_input_grad[:4]
        scale = ctx.scale
        # Work in the incoming gradient's precision (bf16 under autocast); autograd casts each
        # gradient back to its input's dtype.
        dtype = dy.dtype
        dx = dB = dA = d_values = None
        if need_x:
            dx = dy @ sparse_plus_low_rank(B, A, values, indices, scale).to(dtype)
        if need_B or need_A or need_values:
            g = dy.reshape(-1, dy.shape[-1]).T @ x.reshape(-1, x.shape[-1]).to(dtype)
            if need_B:
                dB = scale * (g @ A.to(dtype).T)  # (d_out, r)
            if need_A:
                dA = scale * (B.to(dtype).T @ g)  # (r, d_in)
            if need_values:
                d_values = g.reshape(-1)[indices]  # (nnz,)
        return dx, dB, dA, d_values, None, None


@LINEARS.register("sltrain")
class SLTrain(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        rank: int = bounded(32, ge=1)
        """Rank r of the low-rank part B A."""
        alpha: float = bounded(32.0, gt=0)
        """The low-rank part is scaled by alpha / rank (the paper's lora_alpha)."""
        density: float = bounded(0.03, gt=0, lt=1)
        """Fraction δ of the d_out·d_in entries on the sparse part's fixed support."""

    def __init__(self, cfg: Config, d_in: int, d_out: int) -> None:
        super().__init__()
        self.d_in, self.d_out, self.rank = d_in, d_out, cfg.rank
        self.scale = cfg.alpha / cfg.rank
        # The class Config's bounds exclude density 0, but a Config built in code may use it:
        # an empty support makes this exactly the low-rank layer.
        n_values = int(cfg.density * d_in * d_out)
        # The support is drawn once from the global RNG: every layer gets its own, and
        # torch.manual_seed before building the model reproduces them all. Sorted (as in the
        # paper's code) for memory-friendly scatter and gather. A persistent buffer, so a
        # checkpoint reloads the support its values belong to.
        support = torch.randperm(d_in * d_out)[:n_values].sort().values
        self.register_buffer("indices", support)
        self.A = nn.Parameter(torch.empty(cfg.rank, d_in))
        self.B = nn.Parameter(torch.empty(d_out, cfg.rank))
        self.values = nn.Parameter(torch.empty(n_values))
        self.reset_parameters()

    def reset_parameters(self, std: float | None = None) -> None:
        # As in the paper: B = 0, so W = S at init and the low-rank part grows from zero, and
        # A is Kaiming-uniform. W = S then has entries of RMS std when the values have RMS
        # std / sqrt(density). Default (std None): the paper's Uniform(±1/sqrt(d_in)) values.
        nn.init.zeros_(self.B)
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        if self.values.numel() == 0:
            return
        if std is None:
            bound = 1.0 / math.sqrt(self.d_in)
        else:
            density = self.values.numel() / (self.d_in * self.d_out)
            bound = math.sqrt(3.0 / density) * std  # a uniform's std is bound / sqrt(3)
        nn.init.uniform_(self.values, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SparsePlusLowRankLinear.apply(
            x, self.B, self.A, self.values, self.indices, self.scale
        )

    def dense_weight(self) -> torch.Tensor:
        """The (d_out, d_in) matrix this layer applies."""
        return sparse_plus_low_rank(self.B, self.A, self.values, self.indices, self.scale)

    def macs_per_token(self) -> int:
        # The forward applies the rebuilt dense W to every row. Rebuilding it costs
        # r·d_in·d_out once per call, whatever the number of rows, so it is not per token.
        return self.d_in * self.d_out
