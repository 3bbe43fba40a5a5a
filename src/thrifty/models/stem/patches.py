"""``patches``: the ViT stem: an image cut into square patches, each projected to d_model, with
a learned position embedding per patch (the blocks' RoPE adds raster-order positions on top).

Features are read by pooling the hidden states (``mean_features``); there is no class token,
so every position is a patch and ``keep`` subsets (MAE's visible patches) stay simple.
``merge`` turns on ToMe token merging between the blocks (``thrifty.models.merging``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.models.merging import KEY, MergeConfig, check_rate
from thrifty.models.stem.base import STEMS


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C·p·p) patches in raster order."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(B, (H // patch) * (W // patch), C * patch * patch)


@STEMS.register("patches")
class PatchStem(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        patch_size: int = bounded(2, ge=1)
        """Side of a square patch in pixels; it must divide the image side."""
        image_size: int | None = bounded(None, ge=1)
        """Side of the (square) images (None: from the prepared image set)."""
        channels: int | None = bounded(None, ge=1)
        """Colour channels (None: from the prepared image set)."""
        merge: MergeConfig = field(default_factory=MergeConfig)
        """ToMe token merging between blocks: {r: tokens per merge, schedule: constant or
        progressive} (r = 0: off)."""

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        if cfg.image_size is None or cfg.channels is None:
            raise ValueError("model.stem image_size and channels must be set (from the data)")
        self.patch = cfg.patch_size
        self.patch_dim = cfg.channels * cfg.patch_size**2
        self.num_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.proj = nn.Linear(self.patch_dim, model.d_model)
        self.position = nn.Parameter(torch.zeros(self.num_patches, model.d_model))
        self.merge = cfg.merge  # read by Transformer.forward / flops_per_token
        if cfg.merge.r:
            check_rate(cfg.merge.r, self.num_patches, model.n_layers)
            if model.attention["name"] == "meta":  # it and-s masks: no additive log(size)
                raise UserError(f"{KEY} needs model.attention mha or moa, not meta")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(patchify(images, self.patch)) + self.position

    def reset_parameters(self, std: float | None = None) -> None:
        std = 0.02 if std is None else std
        nn.init.normal_(self.proj.weight, 0.0, std)
        nn.init.zeros_(self.proj.bias)
        nn.init.normal_(self.position, 0.0, std)

    def embedding_params(self) -> int:
        return self.position.numel()

    def flops_per_token(self, head_fraction: float) -> float:
        return 6.0 * self.patch_dim * self.proj.out_features  # the projection; no LM head


def mean_features(model, images: torch.Tensor, progress: float | None = None) -> torch.Tensor:
    """(B, C) image features: the final hidden states averaged over the patches. With token
    merging each patch carries its merged token's state, so this is the size-weighted mean;
    ``progress`` is training progress, for the progressive merge schedule."""
    return model(images, causal=False, progress=progress).mean(1)
