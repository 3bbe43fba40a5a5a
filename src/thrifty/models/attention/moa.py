"""``moa``: BAM's soft mixture of attention experts (Zhang et al. 2024, ``papers/bam.md``).

Every token runs through all ``experts`` attention experts and mixes their outputs with its
router softmax: y = Σ_i g_i(x) · Attn_i(x). There is no top-k, so there is no load to balance
and no auxiliary loss. Each expert is the ``mha`` layout (RoPE, no biases, SDPA).

Parameters (the keys dense checkpoints are upcycled into), with E experts:

- full (BAM with KV experts): ``router.weight`` (E, d_model), ``experts.{i}.qkv.*`` (rows
  [q; k; v], as dense mha's ``qkv``) and ``experts.{i}.out.*``;
- ``share_kv`` (BAM with KV sharing): ``router.weight``, one shared ``kv.*`` (rows [k; v]:
  dense mha's ``qkv`` rows from d_model on, averaged over the dense models),
  ``experts.{i}.q.*`` (dense ``qkv`` rows [:d_model]) and ``experts.{i}.out.*``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thrifty.bounds import bounded
from thrifty.models.attention.base import ATTENTIONS, score_flops
from thrifty.models.attention.mha import MultiHeadAttention, attend
from thrifty.models.linear import make_linear
from thrifty.models.linear.base import matmul_params


class QueryExpert(nn.Module):
    """An attention expert that brings its own W_Q and W_O and borrows shared keys and values."""

    def __init__(self, model) -> None:
        super().__init__()
        self.q = make_linear(model.linear_for("qkv"), model.d_model, model.d_model)
        self.out = make_linear(model.linear_for("out"), model.d_model, model.d_model)

    def reset_parameters(self, std: float, out_std: float) -> None:
        self.q.reset_parameters(std)
        self.out.reset_parameters(out_std)


@ATTENTIONS.register("moa")
class MixtureOfAttention(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        experts: int = bounded(2, ge=1)
        """Number of attention experts; every token uses all of them."""
        share_kv: bool = False
        """Share W_K and W_V across experts (BAM's KV-sharing variant: a dense-sized KV
        cache); W_Q and W_O stay per expert."""

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        self.n_heads = model.n_heads
        self.d_model = model.d_model
        self.share_kv = cfg.share_kv
        self.router = nn.Linear(model.d_model, cfg.experts, bias=False)
        if cfg.share_kv:
            self.kv = make_linear(model.linear_for("qkv"), model.d_model, 2 * model.d_model)
            self.experts = nn.ModuleList(QueryExpert(model) for _ in range(cfg.experts))
        else:
            self.experts = nn.ModuleList(
                MultiHeadAttention(MultiHeadAttention.Config(), model) for _ in range(cfg.experts)
            )

    def reset_parameters(self, std: float, out_std: float) -> None:
        nn.init.normal_(self.router.weight, 0.0, std)
        if self.share_kv:
            self.kv.reset_parameters(std)
        for expert in self.experts:
            expert.reset_parameters(std, out_std)

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs: every expert's projections and scores, the shared kv and the router."""
        macs = self.router.weight.numel() + sum(
            matmul_params(layer)
            for expert in self.experts
            for layer in ((expert.q, expert.out) if self.share_kv else (expert.qkv, expert.out))
        )
        if self.share_kv:
            macs += matmul_params(self.kv)
        return 6.0 * macs + len(self.experts) * score_flops(seq_len, self.d_model)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        causal: bool,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # route in fp32, as the MoE does
            gates = self.router(x.float()).softmax(dim=-1)  # (B, T, E)
        if self.share_kv:
            outputs = self._shared_kv_experts(x, cos, sin, causal, mask)
        else:
            outputs = (expert(x, cos, sin, causal, mask) for expert in self.experts)
        y = None
        for i, out in enumerate(outputs):  # (B, T, C) each
            part = gates[..., i : i + 1] * out
            y = part if y is None else y + part
        return y.to(x.dtype)

    def _shared_kv_experts(self, x, cos, sin, causal, mask):
        """Each expert's output, from its own queries and the keys and values all share."""
        B, T, C = x.shape
        heads = (B, T, self.n_heads, C // self.n_heads)
        k, v = self.kv(x).view(B, T, 2, *heads[2:]).unbind(2)
        for expert in self.experts:
            q = expert.q(x).view(heads)
            yield expert.out(attend(q, k, v, cos, sin, causal, mask))
