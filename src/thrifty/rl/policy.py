"""thrifty's transformer as the policy network of Stable-Baselines3's PPO.

PPO itself is Stable-Baselines3's (a maintained implementation; thrifty writes no RL
algorithm). What is thrifty's is the network: ``GridExtractor`` is an SB3 features extractor
that runs a ``Transformer`` with the ``grid`` stem on the flat observation and returns its
direction token's state. The actor and the critic each get their own extractor
(``share_features_extractor=False``), so a behaviour-cloned policy initialises the actor only,
as in Andres et al. 2023, and the critic's value loss cannot wash the cloned features out.
The actor's head is SB3's ``action_net`` straight on the features (``net_arch.pi = []``): the
same linear layer as objective ``bc``'s head, so ``load_cloned_policy`` copies both.

SB3's orthogonal initialisation is off so the extractors start as thrifty initialises a model
(the same weights for the same seed in every arm); the action head of a fresh actor gets SB3's
small-gain init by hand, so an untrained policy starts near-uniform.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from thrifty.config import ModelConfig
from thrifty.errors import UserError
from thrifty.models.stem.grid import direction_features
from thrifty.models.transformer import Transformer


class GridExtractor(BaseFeaturesExtractor):
    """Flat MiniGrid observations (B, OBS_WIDTH) float -> (B, d_model) features."""

    def __init__(self, observation_space, model_cfg: ModelConfig, seed: int = 0) -> None:
        super().__init__(observation_space, features_dim=model_cfg.d_model)
        torch.manual_seed(seed)  # thrifty's init for this seed, as ``initial_model`` makes it
        self.model = Transformer(model_cfg)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return direction_features(self.model, observations.long())


def policy_kwargs(model_cfg: ModelConfig, seed: int, value_width: int = 64) -> dict[str, Any]:
    """PPO's ``policy_kwargs`` for an actor and a critic built on ``model_cfg``."""
    return {
        "features_extractor_class": GridExtractor,
        "features_extractor_kwargs": {"model_cfg": model_cfg, "seed": seed},
        "share_features_extractor": False,
        "net_arch": {"pi": [], "vf": [value_width]},
        "ortho_init": False,
    }


def init_fresh_actor_head(policy) -> None:
    """SB3's init for the action head (orthogonal, gain 0.01): a near-uniform first policy."""
    nn.init.orthogonal_(policy.action_net.weight, gain=0.01)
    nn.init.zeros_(policy.action_net.bias)


def load_cloned_policy(policy, run: str | Path) -> dict:
    """Copy the model and action head of a ``bc`` run (or checkpoint) into PPO's actor; returns
    the run's ledger as it stood at that checkpoint."""
    from safetensors.torch import load_file

    from thrifty.runs import load_model

    loaded = load_model(run)
    if loaded.cfg.objective.get("name") != "bc":
        raise UserError(
            f"--init={run}: not a behaviour-cloning run (objective "
            f"{loaded.cfg.objective.get('name')!r}); train one with objective bc"
        )
    actor = policy.pi_features_extractor.model
    try:
        actor.load_state_dict(loaded.model.state_dict())
    except RuntimeError as e:
        raise UserError(f"--init={run}: its model does not fit this policy: {e}") from None
    head = load_file(str(loaded.checkpoint / "objective.safetensors"))
    policy.action_net.load_state_dict({k.split(".")[-1]: v for k, v in head.items()})
    return loaded.ledger()


def action_logits(policy, observations: torch.Tensor) -> torch.Tensor:
    """(B, actions) logits of the actor for flat observations (B, OBS_WIDTH) float."""
    return policy.get_distribution(observations).distribution.logits
