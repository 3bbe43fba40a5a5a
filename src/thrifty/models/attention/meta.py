"""``meta``: multi-head attention plus meta-attention (Shah et al. 2025, ``papers/meta_tokens.md``).

Meta-tokens ``<m>`` (``thrifty.data.tokenizer.META_ID``) are inserted into training text
(``thrifty.objectives.meta_tokens``). Beside the block's usual attention, a meta-attention
sub-layer with its own projections lets every position read *only* the meta-tokens before it
(``queries: meta``: only meta-tokens read them, the paper's "flows exclusively between
meta-tokens"); its output is added to the attention's. The card leaves where it sits open;
here it shares the block's attention slot and residual add, and uses RoPE (the paper's best
variant) unless ``rope: false``.

A position with no meta-token to read gets exactly zero from the sub-layer: it is computed with
its own key as a stand-in (so softmax stays finite and gradients stay clean) and multiplied by
zero. So on text without meta-tokens a ``meta`` model computes what its ``mha`` part computes.
The parameters ``qkv`` / ``out`` are the ``mha`` layout's, so a dense checkpoint loads into the
main attention; the sub-layer's are ``meta_qkv`` / ``meta_out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from thrifty.data.tokenizer import META_ID
from thrifty.models.attention.base import ATTENTIONS, score_flops
from thrifty.models.attention.mha import MultiHeadAttention
from thrifty.models.linear import make_linear
from thrifty.models.linear.base import matmul_params
from thrifty.models.rope import apply_rope


def meta_keys(
    ids: torch.Tensor, causal: bool, queries: str, mask: torch.Tensor | None
) -> torch.Tensor:
    """(B, 1, T, T) bool: which keys each query of meta-attention reads: meta-tokens, at or
    before the query when ``causal``, only from meta-token queries for ``queries="meta"``,
    and-ed with the block's ``mask`` (padding, documents)."""
    is_meta = ids == META_ID  # (B, T)
    allowed = is_meta[:, None, :].expand(-1, ids.shape[1], -1)  # query x key
    if causal:
        allowed = allowed & torch.ones_like(allowed[0]).tril()
    if queries == "meta":
        allowed = allowed & is_meta[:, :, None]
    allowed = allowed[:, None]
    return allowed if mask is None else allowed & mask


@ATTENTIONS.register("meta")
class MetaAttention(MultiHeadAttention):
    @dataclass(kw_only=True)
    class Config:
        queries: Literal["all", "meta"] = "all"
        """Who reads the meta-tokens: every position, or meta-tokens only."""
        rope: bool = True
        """Rotate meta-attention's queries and keys by position (RoPE)."""

    wants_ids = True  # the block passes the token ids: meta-attention needs to see <m>

    def __init__(self, cfg: Config, model) -> None:
        super().__init__(MultiHeadAttention.Config(), model)
        self.queries, self.rope = cfg.queries, cfg.rope
        self.meta_qkv = make_linear(model.linear_for("qkv"), model.d_model, 3 * model.d_model)
        self.meta_out = make_linear(model.linear_for("out"), model.d_model, model.d_model)

    def reset_parameters(self, std: float, out_std: float) -> None:
        super().reset_parameters(std, out_std)
        self.meta_qkv.reset_parameters(std)
        self.meta_out.reset_parameters(out_std)

    def flops_per_token(self, seq_len: int) -> float:
        # the sub-layer runs dense scores over every key (masked), so count them all
        macs = matmul_params(self.meta_qkv) + matmul_params(self.meta_out)
        return super().flops_per_token(seq_len) + 6.0 * macs + score_flops(seq_len, self.d_model)

    def forward(self, x, cos, sin, causal, mask, ids=None):
        y = super().forward(x, cos, sin, causal, mask)
        if ids is None:
            return y  # no ids, no meta-tokens: the sub-layer adds exactly nothing
        return y + self.meta_attention(x, cos, sin, causal, mask, ids)

    def meta_attention(self, x, cos, sin, causal, mask, ids) -> torch.Tensor:
        """The sub-layer's output (B, T, C): zero at every position with no meta-token to read."""
        B, T, C = x.shape
        allowed = meta_keys(ids, causal, self.queries, mask)  # (B, 1, T, T)
        reads = allowed.any(-1, keepdim=True)  # (B, 1, T, 1)
        # a query with nothing to read attends to itself, and its output is then zeroed
        keys = allowed | (~reads & torch.eye(T, dtype=torch.bool, device=x.device))
        q, k, v = self.meta_qkv(x).view(B, T, 3, self.n_heads, C // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        if self.rope:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
        out = out * reads.to(out.dtype)
        return self.meta_out(out.transpose(1, 2).reshape(B, T, C))
