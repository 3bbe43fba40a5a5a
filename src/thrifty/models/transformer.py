"""The one transformer: stem (token embedding) + blocks + norm + tied LM head.

The stem comes from the STEMS registry (``model.stem``; ``tokens``, the embedding table, by
default; ``patches`` for images), so stems of other modalities feed the same blocks; the LM
head (``logits``) exists only with the token stem.

By default it is the Llama layout (RoPE, RMSNorm pre-norm, SwiGLU, tied embeddings, no biases),
whose parameters map one-to-one onto ``transformers.LlamaForCausalLM`` (q/k/v and gate/up are
fused here and split on export). A block's layout, attention and MLP are slots filled from the
BLOCKS, ATTENTIONS and MLPS registries (``model.block``, ``model.attention``, ``model.mlp``),
and every block projection is made by ``make_linear`` (``model.linear``, per projection
``model.projections``), so structured weights and mixtures of experts swap in without
surgery; each member owns its init, parameter count and FLOPs.

Attention is causal or bidirectional per forward call, so one set of weights serves causal LM,
masked LM and GPT-BERT's hybrid (Charpentier & Samuel 2024). The ``patches`` stem's
``merge`` key turns on ToMe token merging between blocks (``thrifty.models.merging``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.config import ModelConfig
from thrifty.data.tokenizer import BOS_ID
from thrifty.models import aux
from thrifty.models.attention.mha import MultiHeadAttention
from thrifty.models.block import BLOCKS
from thrifty.models.block.sequential import SequentialBlock
from thrifty.models.merging import merge_rate, merged_blocks, merged_flops
from thrifty.models.mlp.swiglu import SwiGLU
from thrifty.models.norm import RMSNorm
from thrifty.models.rope import apply_rope, rope_tables
from thrifty.models.stem import STEMS

__all__ = ["RMSNorm", "Transformer", "apply_rope", "is_llama_block", "rope_tables"]


def is_llama_block(block: nn.Module) -> bool:
    """A sequential block of multi-head attention and SwiGLU: the Llama layout, which hand-written
    shortcuts (cached decoding, last-block readout) mirror; other layouts take the full pass."""
    return (
        isinstance(block, SequentialBlock)
        and isinstance(block.attn, MultiHeadAttention)
        and isinstance(block.mlp, SwiGLU)
    )


def document_mask(ids: torch.Tensor, causal: bool, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, 1, T, T) attention mask that keeps every token inside its own document of a packed
    window (documents start at ``<s>``; GPT-BERT's block-diagonal mask), lower-triangular when
    ``causal``, and-ed with ``mask``. RoPE is relative, so a document attends as if it began
    the window."""
    document = (ids == BOS_ID).cumsum(1)  # (B, T): index of the document each token is in
    allowed = document[:, :, None] == document[:, None, :]  # (B, T, T) query x key
    if causal:
        T = ids.shape[1]
        allowed &= torch.ones(T, T, dtype=torch.bool, device=ids.device).tril()
    allowed = allowed[:, None]
    return allowed if mask is None else allowed & mask


class Transformer(nn.Module):
    """Backbone + tied LM head. ``forward`` returns final hidden states; ``logits`` projects."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = STEMS.build(cfg.stem, cfg)  # the token embedding, for text
        self.blocks = nn.ModuleList(BLOCKS.build(cfg.block, cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        # a layer whose auxiliary losses must not count pads says so (``aux.real_mask``)
        self.pads_matter = any(getattr(m, "counts_real_tokens", False) for m in self.modules())
        cos, sin = rope_tables(
            cfg.d_model // cfg.n_heads,
            cfg.max_seq_len,
            cfg.rope_theta,
            cfg.rope_scaling,
            cfg.rope_factor,
            cfg.rope_original_len or round(cfg.max_seq_len / cfg.rope_factor),
        )
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        self.embed.reset_parameters(std)
        # GPT-2's scaled init for projections that write into the residual stream.
        out_std = std / math.sqrt(2 * max(self.cfg.n_layers, 1))  # 0 blocks: a bare stem
        for block in self.blocks:
            block.reset_parameters(std, out_std)
        self.norm.reset_parameters()

    def forward(
        self,
        ids: torch.Tensor,
        causal: bool = True,
        padding: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        progress: float | None = None,
    ) -> torch.Tensor:
        """Hidden states (B, T, C) of ids (B, T), or of whatever input the stem reads (images
        (B, C, H, W) for ``patches``).

        ``padding`` (B, T) bool marks real tokens; in bidirectional mode padded keys are hidden
        from every query. Padding must be on the right, so causal mode needs no mask: no real
        token attends to a later pad. ``keep`` (B, K) long: only the stem's tokens at these
        positions enter the blocks, each rotated by RoPE at its own position (MAE's visible
        patches). ``progress``: training progress, for a progressive token-merge schedule
        (None: outside training).
        """
        x = self.embed(ids)
        T = x.shape[1]
        if T > self.cfg.max_seq_len:
            raise ValueError(
                f"sequence of {T} tokens exceeds model.max_seq_len={self.cfg.max_seq_len}"
            )
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        if keep is not None:
            x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))
            cos, sin = cos[keep][:, None], sin[keep][:, None]  # (B, 1, K, hd): per row
        mask = None
        if padding is not None and not causal:
            mask = padding[:, None, None, :]  # (B, 1, 1, T), True = may attend
        if self.cfg.document_attention:
            mask = document_mask(ids, causal, mask)
        r = merge_rate(getattr(self.embed, "merge", None), progress)  # only the patches stem's
        if self.pads_matter and aux.collecting():
            with aux.real_tokens(self._real_tokens(ids, padding, keep)):
                return self._blocks(x, cos, sin, causal, mask, ids, r)
        return self._blocks(x, cos, sin, causal, mask, ids, r)

    def _real_tokens(
        self,
        ids: torch.Tensor,
        padding: torch.Tensor | None,
        keep: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """(B, T) bool of the tokens entering the blocks that are not padding, for layers whose
        auxiliary losses must not count pads (a router's load balance; ``aux.real_mask`` drops
        a mask of another length); None: none known."""
        pad_id = getattr(self.embed, "pad_id", None)  # a stem of token ids knows its pad
        if padding is None and pad_id is not None:
            padding = ids != pad_id
        if padding is not None and keep is not None:
            padding = padding.gather(1, keep)
        return padding

    def _blocks(self, x, cos, sin, causal, mask, ids, r) -> torch.Tensor:
        if r:
            return self.norm(merged_blocks(self.blocks, x, cos, sin, causal, mask, r))
        for block in self.blocks:
            x = block(x, cos, sin, causal, mask, ids)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tied output projection: (..., C) -> (..., V)."""
        return F.linear(hidden, self.embed.weight)

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings else n - self.embed.embedding_params()

    def flops_per_token(self, seq_len: int, head_fraction: float = 1.0) -> float:
        """Training FLOPs per token (forward + backward): 6·matmul weights + attention (PaLM).

        ``head_fraction``: share of positions the LM head runs on (masked objectives supervise
        ~15% of them, and thrifty only projects those). With token merging the blocks are
        counted on the shrinking sequence (``thrifty.models.merging.merged_flops``).
        """
        merge = getattr(self.embed, "merge", None)
        if merge is not None and merge.r:
            blocks = merged_flops(self.blocks, seq_len, merge, self.cfg.d_model)
        else:
            blocks = sum(block.flops_per_token(seq_len) for block in self.blocks)
        return blocks + self.embed.flops_per_token(head_fraction)
