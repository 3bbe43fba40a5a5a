"""The layers of thrifty's transformer for ``transformers`` (see ``modeling_thrifty.py``):
RMSNorm, RoPE (with its linear / YaRN extension), the attention members (``mha``, ``moa``,
``meta``), the MLP members (``swiglu``, ``moe``), the two block layouts and the padding mask.
Needs only torch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_thrifty import ThriftyConfig


class ThriftyRMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).type_as(x)


def rope_tables(
    head_dim: int, length: int, theta: float, device, scaling: dict | None = None
) -> tuple[torch.Tensor, ...]:
    """cos/sin (length, head_dim), computed in float64 on the CPU as thrifty does; ``scaling``
    (``config.rope_extension``): position interpolation (``linear``) or YaRN (``yarn``) by
    ``factor`` over ``original_max_position_embeddings`` positions, as in transformers."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    scale = 1.0
    factor = float(scaling["factor"]) if scaling else 1.0
    if scaling and factor != 1.0 and scaling["rope_type"] == "linear":
        inv_freq = inv_freq / factor
    elif scaling and factor != 1.0 and scaling["rope_type"] == "yarn":
        original = scaling["original_max_position_embeddings"]

        def dimension(rotations: float) -> float:
            return head_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(theta))

        low = max(math.floor(dimension(32.0)), 0)
        high = min(math.ceil(dimension(1.0)), head_dim - 1)
        ramp = (torch.arange(head_dim // 2, dtype=torch.float64) - low) / max(high - low, 1e-3)
        interpolated = ramp.clamp(0, 1)
        inv_freq = inv_freq / factor * interpolated + inv_freq * (1 - interpolated)
        scale = 0.1 * math.log(factor) + 1.0
    angles = torch.outer(torch.arange(length, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return (angles.cos() * scale).float().to(device), (angles.sin() * scale).float().to(device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def attend(q, k, v, cos, sin, causal: bool, mask: torch.Tensor | None) -> torch.Tensor:
    """RoPE'd scaled dot-product attention of (B, T, H, hd) heads, merged back to (B, T, C)."""
    B, T, H, hd = q.shape
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
    q, k = apply_rope(q, cos, sin).type_as(v), apply_rope(k, cos, sin).type_as(v)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
    return y.transpose(1, 2).reshape(B, T, H * hd)


def route(x: torch.Tensor, router: nn.Linear) -> torch.Tensor:
    """Router softmax (..., E) in fp32, as thrifty routes even under autocast or in bf16."""
    return F.linear(x.float(), router.weight.float()).softmax(dim=-1)


class ThriftyAttention(nn.Module):
    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.n_heads = config.num_attention_heads
        self.qkv_proj = nn.Linear(d, 3 * d, bias=False)  # rows [q; k; v]
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, causal: bool, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv_proj(x).view(B, T, 3, self.n_heads, C // self.n_heads).unbind(2)
        return self.o_proj(attend(q, k, v, cos, sin, causal, mask))


class ThriftyMetaAttention(ThriftyAttention):
    """``meta``: attention plus meta-attention, a sub-layer in which positions read only the
    meta-tokens (``config.meta_token_id``) at or before them (``queries: meta``: only
    meta-tokens read them); exactly zero where there is none to read."""

    wants_ids = True

    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__(config)
        d = config.hidden_size
        self.meta_token_id = config.meta_token_id
        self.queries = config.attention.get("queries", "all")
        self.rope = bool(config.attention.get("rope", True))
        self.meta_qkv_proj = nn.Linear(d, 3 * d, bias=False)
        self.meta_o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, causal: bool, mask, ids=None) -> torch.Tensor:
        y = super().forward(x, cos, sin, causal, mask)
        if ids is None:
            return y
        B, T, C = x.shape
        is_meta = ids == self.meta_token_id
        allowed = is_meta[:, None, :].expand(-1, T, -1)
        if causal:
            allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        if self.queries == "meta":
            allowed = allowed & is_meta[:, :, None]
        allowed = allowed[:, None]
        if mask is not None:
            allowed = allowed & mask
        reads = allowed.any(-1, keepdim=True)
        keys = allowed | (~reads & torch.eye(T, dtype=torch.bool, device=x.device))
        q, k, v = self.meta_qkv_proj(x).view(B, T, 3, self.n_heads, C // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if self.rope:
            q, k = apply_rope(q, cos, sin).type_as(v), apply_rope(k, cos, sin).type_as(v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys) * reads.to(v.dtype)
        return y + self.meta_o_proj(out.transpose(1, 2).reshape(B, T, C))


def attention_ids(attn: nn.Module, ids) -> dict:
    return {"ids": ids} if getattr(attn, "wants_ids", False) else {}


class ThriftyQueryExpert(nn.Module):
    """A ``share_kv`` attention expert: its own W_Q and W_O; keys and values are shared."""

    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.q_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)


class ThriftyMixtureOfAttention(nn.Module):
    """BAM's soft mixture of attention experts: every expert runs, mixed by the router."""

    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__()
        d, experts = config.hidden_size, config.attention["experts"]
        self.n_heads = config.num_attention_heads
        self.share_kv = bool(config.attention.get("share_kv", False))
        self.router = nn.Linear(d, experts, bias=False)
        if self.share_kv:
            self.kv_proj = nn.Linear(d, 2 * d, bias=False)  # rows [k; v]
            self.experts = nn.ModuleList(ThriftyQueryExpert(config) for _ in range(experts))
        else:
            self.experts = nn.ModuleList(ThriftyAttention(config) for _ in range(experts))

    def forward(self, x, cos, sin, causal: bool, mask: torch.Tensor | None) -> torch.Tensor:
        gates = route(x, self.router)  # (B, T, E)
        if self.share_kv:
            B, T, C = x.shape
            heads = (B, T, self.n_heads, C // self.n_heads)
            k, v = self.kv_proj(x).view(B, T, 2, *heads[2:]).unbind(2)
            outputs = (
                e.o_proj(attend(e.q_proj(x).view(heads), k, v, cos, sin, causal, mask))
                for e in self.experts
            )
        else:
            outputs = (e(x, cos, sin, causal, mask) for e in self.experts)
        y = sum(gates[..., i : i + 1] * out for i, out in enumerate(outputs))  # (B, T, C)
        return y.to(x.dtype)


class ThriftyMLP(nn.Module):
    def __init__(self, config: ThriftyConfig, d_ff: int | None = None) -> None:
        super().__init__()
        self.d_ff = d_ff or config.intermediate_size
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * self.d_ff, bias=False)
        self.down_proj = nn.Linear(self.d_ff, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).split(self.d_ff, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class ThriftyMoE(nn.Module):
    """Top-k routed SwiGLU experts; each expert runs on the tokens routed to it only."""

    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__()
        section = config.mlp
        self.n_experts, self.top_k = section["experts"], section["top_k"]
        self.normalize_top_k = bool(section.get("normalize_top_k", True))
        self.capacity_factor = section.get("capacity_factor")
        self.router = nn.Linear(config.hidden_size, self.n_experts, bias=False)
        d_ff = section.get("intermediate_size")
        self.experts = nn.ModuleList(ThriftyMLP(config, d_ff) for _ in range(self.n_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        weights, chosen = route(x, self.router).topk(self.top_k, dim=-1)  # (B, T, k)
        if self.normalize_top_k:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        kept = self._within_capacity(chosen)
        flat, out = x.reshape(B * T, C), x.new_zeros(B * T, C)
        chosen, weights, kept = (t.reshape(B * T, self.top_k) for t in (chosen, weights, kept))
        for e, expert in enumerate(self.experts):
            token, slot = ((chosen == e) & kept).nonzero(as_tuple=True)  # tokens in order
            if token.numel():
                h = expert(flat.index_select(0, token))  # (n_e, C)
                out.index_add_(0, token, (h * weights[token, slot, None]).to(out.dtype))
        return out.view(B, T, C)

    def _within_capacity(self, chosen: torch.Tensor) -> torch.Tensor:
        """(B, T, k) bool: the assignment fits its expert's per-row capacity."""
        if self.capacity_factor is None:
            return torch.ones_like(chosen, dtype=torch.bool)
        T = chosen.shape[1]
        capacity = math.ceil(self.capacity_factor * T * self.top_k / self.n_experts)
        # A token picks an expert at most once, so its place in that expert's queue is the
        # number of tokens up to and including it that picked the same expert.
        picked = F.one_hot(chosen, self.n_experts).sum(dim=2)  # (B, T, E)
        return picked.cumsum(dim=1).gather(2, chosen) <= capacity


ATTENTIONS = {
    "mha": ThriftyAttention,
    "moa": ThriftyMixtureOfAttention,
    "meta": ThriftyMetaAttention,
}
MLPS = {"swiglu": ThriftyMLP, "moe": ThriftyMoE}


class ThriftyBlock(nn.Module):
    """Sequential pre-norm block: x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__()
        self.input_layernorm = ThriftyRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = ATTENTIONS[config.attention["name"]](config)
        self.post_attention_layernorm = ThriftyRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLPS[config.mlp["name"]](config)

    def forward(self, x, cos, sin, causal, mask, ids=None):
        h = self.input_layernorm(x)
        x = x + self.self_attn(h, cos, sin, causal, mask, **attention_ids(self.self_attn, ids))
        return x + self.mlp(self.post_attention_layernorm(x))


class ThriftyParallelBlock(nn.Module):
    """Parallel block: attention and MLP read one shared norm, x + attn(h) + mlp(h)."""

    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__()
        self.input_layernorm = ThriftyRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = ATTENTIONS[config.attention["name"]](config)
        self.mlp = MLPS[config.mlp["name"]](config)

    def forward(self, x, cos, sin, causal, mask, ids=None):
        h = self.input_layernorm(x)
        attn = self.self_attn(h, cos, sin, causal, mask, **attention_ids(self.self_attn, ids))
        return x + attn + self.mlp(h)


BLOCKS = {"sequential": ThriftyBlock, "parallel": ThriftyParallelBlock}


def attention_bias(attention_mask: torch.Tensor | None, T: int, causal: bool):
    """Boolean (B, 1, T, T) mask (True = may attend), or None when nothing is padded.

    A query always sees itself, so rows of padding never go empty (their outputs are unused).
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None
    device = attention_mask.device
    allowed = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=device).tril()
    return allowed | torch.eye(T, dtype=torch.bool, device=device)
