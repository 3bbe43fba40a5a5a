"""Bidirectional hidden states read at one position per row, the last block run only there.

Masked scoring (PLL, MNTP) reads one position of each masked copy. Every block but the last must
run on all positions (later blocks attend to them), but the last block's output is needed at the
read position only: its keys and values still come from every position, while its query,
attention output projection and MLP run on one token per row instead of T. On the mini model
(4 blocks) that removes about a fifth of the matmul work of a copy.

This mirrors ``thrifty.models.transformer.Block`` / ``Attention`` (pre-norm, fused q/k/v laid out
as (T, 3, heads, head_dim), rotate-half RoPE, SDPA, SwiGLU MLP); the scoring tests compare it
with the full forward, so a change to the block shows up there. Other block slots (a parallel
block, a mixture of experts) take the full forward pass and read the position from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thrifty.models.transformer import apply_rope, is_llama_block


def hidden_at(
    model, ids: torch.Tensor, padding: torch.Tensor | None, read: torch.Tensor
) -> torch.Tensor:
    """Final hidden states (B, C) at position ``read[b]`` of each row of ``ids`` (B, T)."""
    B, T = ids.shape
    rows = torch.arange(B, device=ids.device)
    if not is_llama_block(model.blocks[-1]):
        return model(ids, causal=False, padding=padding)[rows, read]
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    mask = None if padding is None else padding[:, None, None, :]  # (B, 1, 1, T)
    x = model.embed(ids)
    for block in model.blocks[:-1]:
        x = block(x, cos, sin, False, mask)
    last = model.blocks[-1]
    C = x.shape[-1]
    H = last.attn.n_heads
    q, k, v = last.attn.qkv(last.attn_norm(x)).view(B, T, 3, H, C // H).unbind(2)
    q = q[rows, read][:, :, None]  # (B, H, 1, hd)
    q = apply_rope(q, cos[read][:, None, None], sin[read][:, None, None])
    k = apply_rope(k.transpose(1, 2), cos, sin)  # (B, H, T, hd)
    y = F.scaled_dot_product_attention(q, k, v.transpose(1, 2), attn_mask=mask)  # (B, H, 1, hd)
    x = x[rows, read] + last.attn.out(y.reshape(B, C))  # (B, C)
    x = x + last.mlp(last.mlp_norm(x))
    return model.norm(x)
