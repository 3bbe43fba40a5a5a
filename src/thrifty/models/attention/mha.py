"""``mha``: multi-head self-attention with RoPE and fused q/k/v, as in Llama (no biases)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thrifty.models.attention import cpu_training
from thrifty.models.attention.base import ATTENTIONS, score_flops
from thrifty.models.attention.kernel import scaled_dot_product
from thrifty.models.linear import make_linear
from thrifty.models.linear.base import matmul_params
from thrifty.models.rope import apply_rope


@ATTENTIONS.register("mha")
class MultiHeadAttention(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        pass

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        self.n_heads = model.n_heads
        self.d_model = model.d_model
        self.qkv = make_linear(model.linear_for("qkv"), model.d_model, 3 * model.d_model)
        self.out = make_linear(model.linear_for("out"), model.d_model, model.d_model)

    def reset_parameters(self, std: float, out_std: float) -> None:
        self.qkv.reset_parameters(std)
        self.out.reset_parameters(out_std)

    def flops_per_token(self, seq_len: int) -> float:
        macs = matmul_params(self.qkv) + matmul_params(self.out)
        return 6.0 * macs + score_flops(seq_len, self.d_model)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        causal: bool,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, C // self.n_heads)
        if cpu_training.applies(qkv, cos, mask):
            return self.out(cpu_training.rope_attention(qkv, cos, sin, causal))
        q, k, v = qkv.unbind(2)
        return self.out(attend(q, k, v, cos, sin, causal, mask))


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    causal: bool,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """RoPE'd scaled dot-product attention of (B, T, H, hd) heads, merged back to (B, T, C)."""
    B, T, H, hd = q.shape
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    y = scaled_dot_product(q, k, v, mask, causal)
    return y.transpose(1, 2).reshape(B, T, H * hd)
