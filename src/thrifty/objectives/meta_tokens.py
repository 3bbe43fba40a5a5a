"""``meta_lm``: next-token prediction on text with meta-tokens inserted (Shah et al. 2025,
``papers/meta_tokens.md``).

Each training window gets ``<m>`` tokens (``META_ID``) at a share ``rate`` of its positions,
either independently at random (``placement: random``) or every ``round(1 / rate)`` positions
from a random offset (``periodic``); the window's real tokens move right to make room and the
tail that no longer fits is dropped, so windows keep their length. Nothing is trained to predict
``<m>`` (targets that are ``<m>`` are ignored: the insertions are random, so they cannot be
predicted); the token *after* an ``<m>`` is predicted from it as from any other position.
Placements are drawn per row from ``Objective.random`` (the global sample's stream), so they do
not depend on the number of processes, and validation applies the same transform (with the
validation split's own streams). Pair it with ``model.attention=meta`` for meta-attention; on
``mha`` the meta-tokens are only extra positions (the paper's pause-token control).

The ledger charges the window's tokens at the run's words per token, meta-tokens included, so a
run is charged slightly more words than the text it reads (by ``rate``): the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from thrifty.bounds import bounded
from thrifty.data.tokenizer import META_ID
from thrifty.objectives.base import IGNORE, OBJECTIVES, Batch, Objective, Output
from thrifty.objectives.randomness import RowRandom
from thrifty.objectives.token_loss import token_term
from thrifty.transfer import to_device

Placement = Literal["random", "periodic"]


def meta_positions(length: int, rate: float, placement: Placement, random: RowRandom):
    """(B, length) bool: where the ``<m>`` tokens go (never position 0, which holds ``<s>`` or
    the window's first token)."""
    rows = len(random)
    if rate == 0:
        return torch.zeros(rows, length, dtype=torch.bool)
    if placement == "random":
        where = random.rand(length) < rate
    else:
        period = max(1, round(1 / rate))
        offset = random.randint(0, period, 1)  # (B, 1)
        where = (torch.arange(length)[None, :] + offset) % period == 0
    where[:, 0] = False
    return where


def insert_meta_tokens(ids: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """``ids`` (B, L) with ``<m>`` at ``where`` (B, L) and the real tokens shifted right into the
    other positions, in order; what no longer fits is dropped."""
    real = (~where).long().cumsum(1) - 1  # index of the real token each position holds
    return torch.where(where, META_ID, ids.gather(1, real.clamp(min=0)))


def insert_periodic(ids: torch.Tensor, rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation's transform: ``ids`` (B, L) with an ``<m>`` at every position p >= 1 with
    p % round(1 / rate) == 0 and *no* token dropped (the rows grow); also (L,) the new position
    of each original token. ``rate`` 0: unchanged."""
    L = ids.shape[1]
    if rate == 0:
        return ids, torch.arange(L)
    period = max(2, round(1 / rate))  # at least one real token between meta-tokens
    # positions 0 .. period-1 are real, then each period holds one <m> and period-1 tokens
    moved = torch.arange(L) + torch.clamp(torch.arange(L) - 1, min=0) // (period - 1)
    out = ids.new_full((ids.shape[0], int(moved[-1]) + 1), META_ID)
    out[:, moved] = ids
    return out, moved


def meta_targets(ids: torch.Tensor) -> torch.Tensor:
    """Next-token targets (B, L-1) of a window with meta-tokens: ``<m>`` targets ignored."""
    targets = ids[:, 1:]
    return targets.masked_fill(targets == META_ID, IGNORE)


@OBJECTIVES.register("meta_lm")
class MetaTokenLM(Objective):
    kind = "causal"
    reweightable = True

    @dataclass(kw_only=True)
    class Config:
        rate: float = bounded(1 / 16, ge=0, lt=1)
        """Share of each window's positions that hold a meta-token, in [0, 1)."""
        placement: Placement = "random"
        """random: each position independently; periodic: every round(1/rate) positions from a
        random offset."""
        z_loss: float = 0.0
        """Weight of the squared log-partition penalty (PaLM's z-loss)."""

    def transform(self, batch: Batch) -> torch.Tensor:
        """The batch's windows with meta-tokens inserted (B, T+1)."""
        random = self.random(batch, "meta")
        where = meta_positions(batch.ids.shape[1], self.cfg.rate, self.cfg.placement, random)
        return insert_meta_tokens(batch.ids, to_device(where, batch.ids.device))

    def __call__(self, batch: Batch) -> Output:
        ids = self.transform(batch)
        hidden = self.model(ids[:, :-1], causal=True)
        term, per_row, metrics = token_term(
            self.model,
            hidden,
            meta_targets(ids),
            batch.weights,
            self.cfg.z_loss,
            batch.reweight,
            dense=True,  # every position but the meta-tokens' predicts the next token
        )
        out = {"loss": term.value.detach(), "accuracy": metrics["accuracy"]}
        return Output(term.value, out, per_row, {"lm": term})
