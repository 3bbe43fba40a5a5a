"""RMSNorm, the normalisation of every block and of the backbone's output (Llama).

On CPU, eager training runs take :class:`_RMSNormFunction`: PyTorch's fused forward kernel
(``_fused_rms_norm``, which also returns the reciprocal RMS) with a backward written for it.
With gradients on, ``F.rms_norm`` on a CPU runs its composite form instead (square, mean,
rsqrt, two products) and autograd takes every one of those apart again; the function keeps
the fused forward and runs a backward of its own, the row sums as one matrix-vector product.
mini's CPU step, A/B in one process: 4-8% faster in bf16 with AMX, 1-2% in fp32. GPUs,
scoring (no gradient) and compiled runs keep ``F.rms_norm``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 as Llama does, so bf16 runs and the HF export agree.
        x32, weight = x.float(), self.weight.float()
        eager_cpu_training = (
            x.device.type == "cpu" and torch.is_grad_enabled() and not torch.compiler.is_compiling()
        )
        if eager_cpu_training:
            return _RMSNormFunction.apply(x32, weight, self.eps).type_as(x)
        return F.rms_norm(x32, (x.shape[-1],), weight, self.eps).type_as(x)


class _RMSNormFunction(torch.autograd.Function):
    """y = x · rstd · w with rstd = 1 / sqrt(mean(x²) + eps) over the last dimension.

    Backward, with x̂ = x · rstd and C the width: dw = Σ_rows g · x̂ and
    dx = rstd · (g · w − x̂ · mean(g · w · x̂)), where mean(g · w · x̂) = (g · x̂) @ w / C."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        out, rstd = torch.ops.aten._fused_rms_norm(x, [x.shape[-1]], weight, eps)
        ctx.save_for_backward(x, weight, rstd)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, rstd = ctx.saved_tensors
        width = x.shape[-1]
        x_hat = x * rstd
        grad_x_hat = grad * x_hat
        grad_weight = grad_x_hat.reshape(-1, width).sum(0) if ctx.needs_input_grad[1] else None
        mean = (grad_x_hat @ weight).unsqueeze(-1) / width  # mean(g · w · x̂), per row
        grad_x = (grad * weight).addcmul_(x_hat, mean, value=-1).mul_(rstd)
        return grad_x, grad_weight, None
