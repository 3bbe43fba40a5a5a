"""``transitions``: one token per transition of a decision-making history, as in DPT (Lee et
al. 2023): each transition's vector (one-hot action, reward, the features of s and s′ when the
task has states, and a flag that marks the query token) goes through one linear projection to
d_model. The blocks' RoPE gives the order.

Token layouts: bandits (``thrifty.data.bandits.transition_features``) are (B, T, arms + 2):
one-hot arm, reward, query flag. MDPs (``thrifty.data.darkroom.darkroom_features``) put the
``state_dim`` features of s then of s′ between the reward and the flag, (B, T, arms + 2 +
2 * state_dim); with ``state_dim`` 0 that is the bandit layout, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thrifty.bounds import bounded
from thrifty.models.stem.base import STEMS


@STEMS.register("transitions")
class TransitionStem(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        arms: int | None = bounded(None, ge=2)
        """Actions of the task: a bandit's arms, an MDP's moves (None: from the prepared
        dataset); a token is arms + 2 wide (one-hot action, reward, query flag) plus the states'."""
        state_dim: int = bounded(0, ge=0)
        """Features of one state (0: bandits, no state; from the prepared dataset); s and s′
        each add this many to a token."""

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        if cfg.arms is None:
            raise ValueError("model.stem.arms must be set (from the data) before building")
        self.arms = cfg.arms
        self.state_dim = cfg.state_dim
        self.width = cfg.arms + 2 + 2 * cfg.state_dim
        self.proj = nn.Linear(self.width, model.d_model, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(tokens)  # (B, T, width) -> (B, T, C)

    def reset_parameters(self, std: float | None = None) -> None:
        nn.init.normal_(self.proj.weight, 0.0, 0.02 if std is None else std)

    def embedding_params(self) -> int:
        return 0  # the projection is a matmul, counted with the blocks

    def flops_per_token(self, head_fraction: float) -> float:
        return 6.0 * self.width * self.proj.out_features  # no LM head
