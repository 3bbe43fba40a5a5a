"""``sequential``: the pre-norm block of GPT-2 and Llama, x + attn(norm(x)), then + mlp(norm(x))."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from thrifty.models.block.base import BLOCKS, attention_ids, build_slots
from thrifty.models.norm import RMSNorm


@BLOCKS.register("sequential")
class SequentialBlock(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        pass

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(model.d_model, model.norm_eps)
        attn, mlp = build_slots(model)
        self.attn = attn
        self.mlp_norm = RMSNorm(model.d_model, model.norm_eps)
        self.mlp = mlp

    def reset_parameters(self, std: float, out_std: float) -> None:
        # in parameter order, so a dense model draws its init exactly as before the slots
        self.attn_norm.reset_parameters()
        self.attn.reset_parameters(std, out_std)
        self.mlp_norm.reset_parameters()
        self.mlp.reset_parameters(std, out_std)

    def flops_per_token(self, seq_len: int) -> float:
        return self.attn.flops_per_token(seq_len) + self.mlp.flops_per_token(seq_len)

    def forward(self, x, cos, sin, causal, mask, ids=None):
        x = x + self.attn(
            self.attn_norm(x), cos, sin, causal, mask, **attention_ids(self.attn, ids)
        )
        return x + self.mlp(self.mlp_norm(x))
