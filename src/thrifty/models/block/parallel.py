"""``parallel``: x + attn(norm(x)) + mlp(norm(x)) from one shared norm (GPT-J, PaLM).

Attention and MLP read the same normalised input, so their matmuls can run side by side; BAM
upcycles into this layout (Zhang et al. 2024, ``papers/bam.md``). It has no Llama counterpart:
such runs export with ``--remote-code``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from thrifty.models.block.base import BLOCKS, attention_ids, build_slots
from thrifty.models.norm import RMSNorm


@BLOCKS.register("parallel")
class ParallelBlock(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        pass

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        self.norm = RMSNorm(model.d_model, model.norm_eps)
        self.attn, self.mlp = build_slots(model)

    def reset_parameters(self, std: float, out_std: float) -> None:
        self.norm.reset_parameters()
        self.attn.reset_parameters(std, out_std)
        self.mlp.reset_parameters(std, out_std)

    def flops_per_token(self, seq_len: int) -> float:
        return self.attn.flops_per_token(seq_len) + self.mlp.flops_per_token(seq_len)

    def forward(self, x, cos, sin, causal, mask, ids=None):
        h = self.norm(x)
        return (
            x + self.attn(h, cos, sin, causal, mask, **attention_ids(self.attn, ids)) + self.mlp(h)
        )
