"""Frozen pretrained encoders of MiniGrid frames as PPO's features, the three arms of the OCR-RL
check (Yoon et al. 2023; ``papers/ocr_rl.md``):

- ``slots``: a ``slot_ae`` run's ViT and Slot Attention, frozen, then a trained
  ``SlotPooling`` (one transformer layer and a CLS token over the slots);
- ``cnn``: ``ConvEncoder`` trained from scratch with PPO;
- ``cnn-ae``: the same ``ConvEncoder`` pretrained as an autoencoder on the same frames
  (``thrifty.rl.cnn_ae``), frozen.

Every arm ends in a trained layer of the same width (``features_dim``) that the actor and the
critic share (one extractor: the frozen encoder runs once per step, not twice). The slots'
initial noise is one fixed draw from ``seed``, the same for every frame, so a frame always gets
the same features and the slots still start apart (equal slots would stay equal). Frozen parts
stay in eval mode and out of the gradient whatever SB3's ``set_training_mode`` says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from thrifty.errors import UserError
from thrifty.models.slots import SlotPooling, gaussian_noise
from thrifty.objectives.slot_ae import encode_slots
from thrifty.rl.cnn_ae import ConvEncoder, load_cnn_ae

ARMS = ("slots", "cnn", "cnn-ae")


def load_slot_encoder(run: str | Path):
    """(the loaded ``slot_ae`` run, its slot networks) of a run or checkpoint folder."""
    from thrifty.objectives import OBJECTIVES
    from thrifty.runs import load_model
    from thrifty.train.checkpoint import load_objective_weights

    loaded = load_model(run)
    if loaded.cfg.objective.get("name") != "slot_ae":
        raise UserError(
            f"--encoder={run}: not a slot_ae run (objective "
            f"{loaded.cfg.objective.get('name')!r}); train one with configs/slot-ae-minigrid.yaml"
        )
    objective = OBJECTIVES.build(loaded.cfg.objective, loaded.model)
    objective.owned.load_state_dict(load_objective_weights(loaded.checkpoint))
    return loaded, objective.owned


def _freeze(*modules: nn.Module) -> None:
    for module in modules:
        module.requires_grad_(False)
        module.eval()


def _check_shape(observation_space, shape: tuple[int, ...], encoder: str) -> None:
    if tuple(observation_space.shape) != tuple(shape):
        raise UserError(
            f"--encoder={encoder} reads frames {'x'.join(map(str, shape))}, the environment "
            f"gives {'x'.join(map(str, observation_space.shape))}; pass a matching --image-size"
        )


class SlotExtractor(BaseFeaturesExtractor):
    """Frames (B, C, S, S) in [0, 1] -> (B, features_dim): frozen slots, trained pooling."""

    def __init__(self, observation_space, encoder: str, features_dim: int = 64, seed: int = 0):
        super().__init__(observation_space, features_dim=features_dim)
        loaded, nets = load_slot_encoder(encoder)
        stem = dict(loaded.cfg.model.stem)
        _check_shape(observation_space, (stem["channels"], *[stem["image_size"]] * 2), encoder)
        self.model, self.slots = loaded.model, nets.slots
        _freeze(self.model, self.slots)
        torch.manual_seed(seed)
        self.pool = SlotPooling(self.slots.dim, features_dim)
        uniforms = torch.rand(
            1, self.slots.num_slots, self.slots.dim, generator=torch.Generator().manual_seed(seed)
        )
        self.register_buffer("noise", gaussian_noise(uniforms))

    def train(self, mode: bool = True):
        super().train(mode)
        _freeze(self.model, self.slots)
        return self

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            noise = self.noise.expand(observations.shape[0], -1, -1)
            slots, _ = encode_slots(self.model, self.slots, observations, noise)
        return self.pool(slots)


class CNNExtractor(BaseFeaturesExtractor):
    """Frames (B, C, S, S) in [0, 1] -> (B, features_dim): a ConvEncoder trained from scratch
    (``encoder`` None) or a pretrained autoencoder's, frozen; then a trained layer."""

    def __init__(
        self, observation_space, encoder: str | None = None, features_dim: int = 64, seed: int = 0
    ):
        super().__init__(observation_space, features_dim=features_dim)
        torch.manual_seed(seed)
        channels, size, _ = observation_space.shape
        self.frozen = encoder is not None
        if self.frozen:
            self.cnn, _ = load_cnn_ae(encoder)
            _check_shape(observation_space, (self.cnn.channels, self.cnn.size, self.cnn.size),
                         encoder)  # fmt: skip
            _freeze(self.cnn)
        else:
            self.cnn = ConvEncoder(channels, size, features_dim)
        self.head = nn.Sequential(nn.Linear(self.cnn.latent, features_dim), nn.ReLU())

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            _freeze(self.cnn)
        return self

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            latent = self.cnn(observations)
        return self.head(latent)


def policy_kwargs(
    arm: str, encoder: str | None, seed: int, features_dim: int = 64, width: int = 64
) -> dict[str, Any]:
    """PPO's ``policy_kwargs`` for ``arm`` (one of ARMS) on ``encoder``."""
    if arm not in ARMS:
        raise UserError(f"--arm={arm!r}: choose one of {', '.join(ARMS)}")
    extractor = SlotExtractor if arm == "slots" else CNNExtractor
    return {
        "features_extractor_class": extractor,
        "features_extractor_kwargs": dict(encoder=encoder, features_dim=features_dim, seed=seed),
        "share_features_extractor": True,
        "net_arch": {"pi": [width], "vf": [width]},
        "ortho_init": False,  # SB3's would overwrite the frozen encoder's pretrained weights
    }


def encoder_ledger(arm: str, encoder: str | None) -> dict | None:
    """The ledger of what the frozen encoder read (its run's, or its folder's); None: scratch."""
    if encoder is None:
        return None
    if arm == "slots":
        from thrifty.runs import read_state, resolve_checkpoint

        return read_state(resolve_checkpoint(encoder), verify=False).get("ledger")
    return json.loads((Path(encoder) / "ledger.json").read_text())


def frame_size(arm: str, encoder: str | None) -> int | None:
    """The frame side the encoder was pretrained on (None: any, for scratch)."""
    if encoder is None:
        return None
    if arm == "slots":
        from thrifty.runs import read_config, resolve_checkpoint

        cfg = read_config(resolve_checkpoint(encoder))
        if cfg.objective.get("name") != "slot_ae":
            raise UserError(f"--encoder={encoder}: not a slot_ae run (--arm slots needs one)")
        return int(dict(cfg.model.stem)["image_size"])
    folder = Path(encoder)
    if not (folder / "result.json").is_file():
        raise UserError(f"--encoder={encoder}: no result.json; pretrain a CNN autoencoder there")
    return int(json.loads((folder / "result.json").read_text())["image_shape"][1])
