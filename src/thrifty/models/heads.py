"""Heads that read a backbone's hidden states: sequence pooling and the classification head.

Pooling is where fine-tuning most often goes silently wrong. With right padding the last
*position* of a row is a pad for every row but the longest one; a causal model's summary of the
sequence sits at the last *real* token, whose index comes from the padding mask. (The BabyLM
pipeline once scored every GPT-2 model at chance because it read the pad position.) Masked and
hybrid models attend both ways, so the first position (``<s>``, BERT's [CLS]) sees everything.

The head follows the BabyLM 2025 fine-tuning pipeline's classifier: norm, linear, GELU, norm,
dropout, linear, with parameter-free LayerNorms.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Pooling = Literal["first", "last", "mean"]


def pool(hidden: torch.Tensor, padding: torch.Tensor, how: Pooling) -> torch.Tensor:
    """(B, C) features of (B, T, C) hidden states; ``padding`` (B, T) is True on real tokens.

    ``first``: position 0 (``<s>``). ``last``: the last real token of each right-padded row.
    ``mean``: the average over each row's real tokens.
    """
    if how == "first":
        return hidden[:, 0]
    if how == "last":
        last = padding.sum(dim=1) - 1  # (B,) index of the last real token
        if bool((last < 0).any()):
            raise ValueError("a row has no real tokens")
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if how == "mean":
        real = padding.to(hidden.dtype)[..., None]  # (B, T, 1)
        return (hidden * real).sum(1) / real.sum(1).clamp(min=1)
    raise ValueError(f"unknown pooling {how!r} (expected 'first', 'last' or 'mean')")


class ClassifierHead(nn.Module):
    """Pooled features (B, C) -> class logits (B, num_labels)."""

    def __init__(
        self, d_model: int, num_labels: int, dropout: float = 0.1, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.eps = eps
        self.dense = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # The backbone's final RMSNorm leaves features on its own scale; the parameter-free
        # LayerNorms give the fresh head the same input scale whatever the backbone.
        x = F.layer_norm(features, features.shape[-1:], eps=self.eps)
        x = F.gelu(self.dense(x))
        x = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        return self.out(self.dropout(x))


class DiscriminatorHead(nn.Module):
    """ELECTRA's replaced-token-detection head (Clark et al. 2020): dense, GELU, dense(1).

    Hidden states (..., C) -> one logit per token (...): "this token was replaced".
    """

    def __init__(self, d_model: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, 1)
        for layer in (self.dense, self.out):
            nn.init.normal_(layer.weight, 0.0, init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.dense(hidden))).squeeze(-1)


class ProjectedLMHead(nn.Module):
    """An LM head for a backbone narrower than its (shared) embedding table.

    ELECTRA's generator head: dense d_model -> d_embed, GELU, norm, then logits against the
    embedding table (V, d_embed) it shares with a wider discriminator (Clark et al. 2020). The
    table is passed in, not owned, so sharing it adds no parameters here. No output bias, like
    the tied head of thrifty's transformer.
    """

    def __init__(self, d_model: int, d_embed: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.dense = nn.Linear(d_model, d_embed, bias=False)
        self.norm_weight = nn.Parameter(torch.ones(d_embed))
        nn.init.normal_(self.dense.weight, 0.0, d_model**-0.5)

    def forward(self, hidden: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(N, d_model) hidden states -> (N, V) logits against ``table`` (V, d_embed)."""
        x = F.gelu(self.dense(hidden))
        x = F.rms_norm(x.float(), (x.shape[-1],), self.norm_weight.float(), self.eps).type_as(x)
        return F.linear(x, table.to(x.dtype))
