"""Unconditional sampling from a model or a logit-averaged ensemble, with a key/value cache.

Distillation through synthetic data (Kim et al. 2025, card §2.6) needs a lot of samples at
temperature 1 from the teacher, prompted only with ``<s>``. Re-running the whole prefix for
every new token costs ~seq_len/2 forward passes per token; the cache makes it one. The cached
step mirrors ``Block.forward`` of ``models/transformer.py`` (pre-norm attention with RoPE at
the token's position, then the SwiGLU MLP) and is tested against the full forward pass. Other
block slots (a parallel block, a mixture of experts) re-run the prefix at each step instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from thrifty.data.tokenizer import BOS_ID, NUM_SPECIAL
from thrifty.models.transformer import Transformer, apply_rope, is_llama_block


class Decoder:
    """Causal decoding of one ``Transformer`` one position at a time, for B sequences."""

    def __init__(self, model: Transformer, batch: int, max_len: int) -> None:
        cfg = model.cfg
        if max_len > cfg.max_seq_len:
            raise ValueError(f"max_len {max_len} exceeds the model's max_seq_len")
        self.model, self.pos = model, 0
        p = next(model.parameters())
        shape = (batch, cfg.n_heads, max_len, cfg.d_model // cfg.n_heads)
        self.keys = [p.new_zeros(shape) for _ in model.blocks]
        self.values = [p.new_zeros(shape) for _ in model.blocks]
        self.cached = all(is_llama_block(b) for b in model.blocks)
        self.prefix = p.new_zeros((batch, max_len), dtype=torch.long)  # for uncached layouts

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed ids (B,) at the next position; return the logits (B, V) for the one after."""
        m, t = self.model, self.pos
        if not self.cached:
            self.prefix[:, t] = ids
            self.pos += 1
            return m.logits(m(self.prefix[:, : t + 1], causal=True)[:, -1])
        cos, sin = m.rope_cos[t : t + 1], m.rope_sin[t : t + 1]
        x = m.embed(ids)[:, None, :]  # (B, 1, C)
        B, _, C = x.shape
        for block, keys, values in zip(m.blocks, self.keys, self.values):
            attn = block.attn
            qkv = attn.qkv(block.attn_norm(x)).view(B, 1, 3, attn.n_heads, C // attn.n_heads)
            q, k, v = (z.transpose(1, 2) for z in qkv.unbind(2))  # (B, H, 1, hd)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            keys[:, :, t], values[:, :, t] = k[:, :, 0], v[:, :, 0]
            # one query at the newest position may attend to every cached one: no mask needed
            y = F.scaled_dot_product_attention(q, keys[:, :, : t + 1], values[:, :, : t + 1])
            x = x + attn.out(y.transpose(1, 2).reshape(B, 1, C))
            x = x + block.mlp(block.mlp_norm(x))
        self.pos += 1
        return m.logits(m.norm(x))[:, 0]


@torch.inference_mode()
def sample_streams(
    members: Sequence[Transformer],
    n_streams: int,
    length: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(n_streams, length) token ids: ``<s>`` then ``length - 1`` samples from the members'
    averaged logits divided by ``temperature``. Streams run on past document ends, as the
    training windows do; split them at special tokens (:func:`split_documents`)."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    device = next(members[0].parameters()).device
    decoders = [Decoder(m.eval(), n_streams, length) for m in members]
    out = torch.empty(n_streams, length, dtype=torch.long)
    ids = torch.full((n_streams,), BOS_ID, dtype=torch.long, device=device)
    out[:, 0] = ids.cpu()
    for t in range(1, length):
        logits = torch.stack([d.step(ids) for d in decoders]).mean(0).float()  # (B, V)
        probs = torch.softmax(logits / temperature, dim=-1).cpu()
        ids_cpu = torch.multinomial(probs, 1, generator=generator)[:, 0]
        out[:, t] = ids_cpu
        ids = ids_cpu.to(device)
    return out


def split_documents(stream: Sequence[int]) -> list[list[int]]:
    """Pieces of a stream between special tokens (a sampled ``<s>`` starts a new document)."""
    docs, current = [], []
    for token in stream:
        if token < NUM_SPECIAL:
            if current:
                docs.append(current)
            current = []
        else:
            current.append(int(token))
    if current:
        docs.append(current)
    return docs
