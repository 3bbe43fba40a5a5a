"""``bc``: behaviour cloning, −log π_θ(a | s) over a demonstration dataset's (s, a) pairs (the
IL pretraining of Andres et al. 2023).

The run's model (``grid`` stem) reads one observation bidirectionally; its direction token's
final state goes through the action head owned here, a linear layer with a bias — the shape of
Stable-Baselines3's ``action_net``, so ``thrifty ppo --init`` loads both as PPO's actor
(``thrifty.rl.policy``). No randomness: the data carries it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.models.stem.grid import GridStem, direction_features
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output, row_term


def bc_logits(model, head: nn.Module, observations: torch.Tensor) -> torch.Tensor:
    """(B, actions) action logits of flat MiniGrid observations (B, OBS_WIDTH)."""
    return head(direction_features(model, observations)).float()


@OBJECTIVES.register("bc")
class BehaviourCloning(Objective):
    kind = "policy"

    @dataclass(kw_only=True)
    class Config:
        actions: int = bounded(7, ge=2)
        """Actions of the environment (MiniGrid's seven)."""
        label_smoothing: float = bounded(0.0, ge=0.0, le=0.99)
        """Mix this share of the uniform distribution into the target (0: plain BC). Cloning
        a planner to zero loss saturates the logits, and PPO fine-tuning from a saturated
        policy has no gradient on the actions it never samples; a little smoothing keeps the
        cloned policy confident but finite."""

    def __init__(self, cfg, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        if not isinstance(model.embed, GridStem):
            raise UserError("objective bc clones a MiniGrid policy: set model.stem=grid")
        device = model.embed.position.device
        self.owned = nn.Linear(model.cfg.d_model, cfg.actions).to(device)
        nn.init.normal_(self.owned.weight, 0.0, model.cfg.init_std)
        nn.init.zeros_(self.owned.bias)

    def __call__(self, batch: Batch) -> Output:
        observations, target = batch.inputs["observations"], batch.inputs["actions"]
        logits = bc_logits(self.model, self.owned, observations)
        losses = F.cross_entropy(
            logits, target, reduction="none", label_smoothing=self.cfg.label_smoothing
        )[:, None]  # (B, 1)
        term, per_row = row_term(losses, batch.weights)
        with torch.no_grad():
            accuracy = (logits.argmax(-1) == target).float().mean()
        loss = term.value
        return Output(
            loss, {"loss": loss.detach(), "accuracy": accuracy}, per_row.detach(), {"bc": term}
        )

    def head_fraction(self) -> float:
        return 0.0  # no LM head

    def extra_flops_per_token(self, seq_len: int) -> float:
        return 6.0 * self.owned.weight.numel() / seq_len  # one head call per observation
