"""Bidirectional hidden states read at one position per row, the first block's projection shared
and the last block run only there.

Masked scoring (PLL, MNTP) reads one position of each masked copy of a sentence. Two parts of
the network need not run on every position of every copy:

- the last block's output is needed at the read position only: its keys and values still come
  from every position, while its query, attention output projection and MLP run on one token
  per row instead of T;
- the first block's norm and q/k/v projection act on each token alone, before anything mixes
  positions, so a copy's projections equal its sentence's everywhere but at the masked tokens.
  Given the unmasked sentences (``source``), they run once per distinct sentence and once per
  distinct replacement token (``<mask>``), and each copy gathers its rows.

On the mini model (4 blocks, BLiMP's ~10-token sentences) the last block's shortcut removes
about a fifth of the matmul work of a copy and the first block's about a tenth of what remains.

This mirrors ``thrifty.models.transformer.Block`` / ``Attention`` (pre-norm, fused q/k/v laid out
as (T, 3, heads, head_dim), rotate-half RoPE, SDPA, SwiGLU MLP); the scoring tests compare it
with the full forward, so a change to the block shows up there. Other block slots (a parallel
block, a mixture of experts) take the full forward pass and read the position from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thrifty.models.attention.mha import attend
from thrifty.models.linear.dense import Dense
from thrifty.models.rope import apply_rope
from thrifty.models.stem.tokens import TokenStem
from thrifty.models.transformer import is_llama_block


def hidden_at(
    model,
    ids: torch.Tensor,
    padding: torch.Tensor | None,
    read: torch.Tensor,
    source: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Final hidden states (B, C) at position ``read[b]`` of each row of ``ids`` (B, T).

    ``source``, optional: (sentences (S, T), row_sentence (B,)), the unmasked sentences the rows
    are copies of, which they equal wherever they are not masked (module docstring)."""
    B, T = ids.shape
    rows = torch.arange(B, device=ids.device)
    blocks = model.blocks
    if not is_llama_block(blocks[-1]):
        return model(ids, causal=False, padding=padding)[rows, read]
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    mask = None if padding is None else padding[:, None, None, :]  # (B, 1, 1, T)
    x = model.embed(ids)
    if source is not None and len(blocks) > 1 and _shares_first_block(model):
        x = _first_block(blocks[0], model.embed, x, ids, source, cos, sin, mask)
        blocks = blocks[1:]
    for block in blocks[:-1]:
        x = block(x, cos, sin, False, mask)
    return model.norm(_last_block(blocks[-1], x, rows, read, cos, sin, mask))


def _shares_first_block(model) -> bool:
    # token embeddings depend on the token alone; other stems (patches, convolutions) may not
    return isinstance(model.embed, TokenStem) and is_llama_block(model.blocks[0])


def _first_block(block, embed, x, ids, source, cos, sin, mask) -> torch.Tensor:
    """``block(x)`` with its norm and q/k/v projection run per distinct sentence and token."""
    sentences, row_sentence = source
    B, T, C = x.shape
    H = block.attn.n_heads
    project = block.attn.qkv
    qkv = project(block.attn_norm(embed(sentences)))[row_sentence]  # (B, T, 3C)
    changed = ids != sentences[row_sentence]  # the masked positions
    tokens, which = torch.unique(ids[changed], return_inverse=True)
    qkv[changed] = project(block.attn_norm(embed(tokens[None])))[0, which]
    q, k, v = qkv.view(B, T, 3, H, C // H).unbind(2)
    x = x + block.attn.out(attend(q, k, v, cos, sin, False, mask))
    return x + block.mlp(block.mlp_norm(x))


def _last_block(block, x, rows, read, cos, sin, mask) -> torch.Tensor:
    """``block(x)`` at position ``read[b]`` of each row: (B, C)."""
    B, T, C = x.shape
    H = block.attn.n_heads
    xn = block.attn_norm(x)
    project = block.attn.qkv
    if isinstance(project, Dense):  # keys and values everywhere, the query at the read position
        q = F.linear(xn[rows, read], project.weight[:C]).view(B, H, 1, C // H)
        k, v = F.linear(xn, project.weight[C:]).view(B, T, 2, H, C // H).unbind(2)
    else:
        q, k, v = project(xn).view(B, T, 3, H, C // H).unbind(2)
        q = q[rows, read][:, :, None]  # (B, H, 1, hd)
    q = apply_rope(q, cos[read][:, None, None], sin[read][:, None, None])
    k = apply_rope(k.transpose(1, 2), cos, sin)  # (B, H, T, hd)
    y = F.scaled_dot_product_attention(q, k, v.transpose(1, 2), attn_mask=mask)  # (B, H, 1, hd)
    x = x[rows, read] + block.attn.out(y.reshape(B, C))  # (B, C)
    return x + block.mlp(block.mlp_norm(x))
