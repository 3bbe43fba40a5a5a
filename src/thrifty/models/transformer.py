"""The one transformer: Llama layout (RoPE, RMSNorm pre-norm, SwiGLU, tied embeddings, no biases).

Attention is causal or bidirectional per forward call, so one set of weights serves causal LM,
masked LM and GPT-BERT's hybrid (Charpentier & Samuel 2024). Every block linear layer is made by
``make_linear`` so structured parameterizations swap in. The parameter layout maps one-to-one onto
``transformers.LlamaForCausalLM`` (q/k/v and gate/up are fused here and split on export).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.config import ModelConfig
from thrifty.models.linear import make_linear
from thrifty.models.linear.base import matmul_params


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 as Llama does, so bf16 runs and the HF export agree.
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).type_as(x)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (max_len, head_dim) in Llama's rotate-half convention."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, hd) queries or keys by position."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = make_linear(cfg.linear, cfg.d_model, 3 * cfg.d_model)
        self.out = make_linear(cfg.linear, cfg.d_model, cfg.d_model)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        causal: bool,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, C // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal and mask is None
        )
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.d_ff = cfg.d_ff
        self.gate_up = make_linear(cfg.linear, cfg.d_model, 2 * cfg.d_ff)
        self.down = make_linear(cfg.linear, cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).split(self.d_ff, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, causal, mask):
        x = x + self.attn(self.attn_norm(x), cos, sin, causal, mask)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """Backbone + tied LM head. ``forward`` returns final hidden states; ``logits`` projects."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size must be set before building the model")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        cos, sin = rope_tables(cfg.d_model // cfg.n_heads, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif p.dim() >= 2:
                # GPT-2's scaled init for projections that write into the residual stream.
                scale = (
                    1 / math.sqrt(2 * self.cfg.n_layers)
                    if ".out." in name or ".down." in name
                    else 1
                )
                nn.init.normal_(p, 0.0, std * scale)

    def forward(
        self,
        ids: torch.Tensor,
        causal: bool = True,
        padding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states (B, T, C) of ids (B, T).

        ``padding`` (B, T) bool marks real tokens; in bidirectional mode padded keys are hidden
        from every query. Padding must be on the right, so causal mode needs no mask: no real
        token attends to a later pad.
        """
        T = ids.shape[1]
        if T > self.cfg.max_seq_len:
            raise ValueError(
                f"sequence of {T} tokens exceeds model.max_seq_len={self.cfg.max_seq_len}"
            )
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        mask = None
        if padding is not None and not causal:
            mask = padding[:, None, None, :]  # (B, 1, 1, T), True = may attend
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, cos, sin, causal, mask)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tied output projection: (..., C) -> (..., V)."""
        return F.linear(hidden, self.embed.weight)

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings else n - self.embed.weight.numel()

    def flops_per_token(self, seq_len: int, head_fraction: float = 1.0) -> float:
        """Training FLOPs per token (forward + backward): 6·matmul weights + attention (PaLM).

        ``head_fraction``: share of positions the LM head runs on (masked objectives supervise
        ~15% of them, and thrifty only projects those).
        """
        macs = sum(
            matmul_params(m)
            for b in self.blocks
            for m in (b.attn.qkv, b.attn.out, b.mlp.gate_up, b.mlp.down)
        )
        macs += (
            head_fraction * self.embed.weight.numel()
        )  # the tied head is a matmul; lookup is not
        return 6.0 * macs + 12.0 * self.cfg.n_layers * seq_len * self.cfg.d_model
