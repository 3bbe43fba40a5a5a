"""Token and span masking with BERT's 80/10/10 replacement (Devlin et al. 2019).

Span masking follows GPT-BERT (Charpentier & Samuel 2024): spans of 1-3 tokens share one
masking score and one replacement decision, and a row masks ``floor(n·p + U)`` tokens (at least
one), so the expected rate is exactly p even on short rows. Special tokens are never masked.
Every row draws from its own stream (``RowRandom``), so a row's mask does not depend on the
other rows of the batch, the world size or the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thrifty.data.tokenizer import MASK_ID, NUM_SPECIAL
from thrifty.objectives.randomness import RowRandom


@dataclass(kw_only=True)
class Masking:
    span: bool = True
    """Mask whole spans of 1..max_span tokens (GPT-BERT) instead of single tokens (BERT)."""
    max_span: int = 3
    """Longest span when span masking."""
    random_fraction: float = 0.1
    """Share of masked positions replaced by a random token."""
    keep_fraction: float = 0.1
    """Share of masked positions left unchanged (the rest become <mask>)."""


def mask_tokens(
    ids: torch.Tensor,
    rate: float,
    how: Masking,
    vocab_size: int,
    random: RowRandom,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt (B, T) ids on the host, where the rows' generators draw; returns (corrupted ids,
    bool mask of positions chosen for prediction), also on the host: a caller moves them to
    its device (``thrifty.transfer.to_device``) and knows which positions were chosen without
    asking the device. Objectives mask the batch's host copy (``Batch.on_host``).

    ``random`` holds one stream per row (``Objective.random(batch, purpose)``)."""
    B, T = ids.shape
    u_score = random.rand(T)
    u_kind = random.rand(T)
    if how.span:
        lengths = random.randint(1, how.max_span + 1, T)
        ends = lengths.cumsum(1)  # span s covers [ends[s] - lengths[s], ends[s])
        span_of = torch.searchsorted(ends, torch.arange(T).expand(B, T).contiguous(), right=True)
        u_score, u_kind = u_score.gather(1, span_of), u_kind.gather(1, span_of)
    eligible = ids >= NUM_SPECIAL
    scores = u_score.masked_fill(~eligible, float("inf"))
    n_eligible = eligible.sum(1)
    k = (n_eligible * rate + random.rand(1)[:, 0]).floor().long().clamp(min=1)
    k = torch.minimum(k, n_eligible)
    kth = scores.sort(1).values.gather(1, (k - 1).clamp(min=0)[:, None])  # (B, 1)
    chosen = (scores <= kth) & eligible & (k[:, None] > 0)

    random_ids = random.randint(NUM_SPECIAL, vocab_size, T)
    to_random = chosen & (u_kind < how.random_fraction)
    to_mask = chosen & (u_kind >= how.random_fraction + how.keep_fraction)
    corrupted = torch.where(to_random, random_ids, ids)
    corrupted = corrupted.masked_fill(to_mask, MASK_ID)
    return corrupted, chosen
