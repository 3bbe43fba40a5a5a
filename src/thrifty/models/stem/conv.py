"""``conv``: a small convolutional stem whose feature map becomes the token sequence, so a CNN
is one more member of the model spine (ScaleKD's CNN students, Fan et al. 2024;
`papers/scalekd.md`).

``depth`` 3x3 convolutions (padding 1), the first ``downsample`` of them with stride 2, GELU
between them; the hidden ones have ``width`` channels and the last writes ``d_model``. The
final feature map, (side / 2^downsample)² cells in raster order, is the (B, T, C) sequence the
blocks read. There is no position embedding: a CNN's features carry position through the
padding, and blocks after the stem add RoPE's raster positions.

A pure CNN is ``model.stem: conv`` with ``model.n_layers: 0``: the model is then the stem and
the final norm, and ``mean_features`` is global average pooling. Allowing zero blocks keeps a
CNN inside the one spine (checkpoints, ledger, FLOPs, probes) instead of a second model class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.models.stem.base import STEMS


def feature_side(section: dict, image_size: int, where: str) -> int:
    """Side of the feature map a ``conv`` stem section makes of ``image_size`` images; a
    UserError naming ``where`` (the images) when the strides do not tile them."""
    downsample = int(section.get("downsample", 1))
    depth = int(section.get("depth", 3))
    if downsample > depth:
        raise UserError(f"model.stem.downsample={downsample} exceeds model.stem.depth={depth}")
    if image_size % 2**downsample:
        raise UserError(
            f"model.stem.downsample={downsample} (stride {2**downsample}) does not tile the "
            f"{image_size}x{image_size} images of {where}"
        )
    return image_size // 2**downsample


@STEMS.register("conv")
class ConvStem(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        depth: int = bounded(3, ge=1)
        """3x3 convolution layers."""
        width: int = bounded(32, ge=1)
        """Channels of every convolution but the last (which writes d_model)."""
        downsample: int = bounded(1, ge=0)
        """How many of the first layers have stride 2: the feature map's side is the image's
        over 2^downsample."""
        image_size: int | None = bounded(None, ge=1)
        """Side of the (square) images (None: from the prepared image set)."""
        channels: int | None = bounded(None, ge=1)
        """Colour channels (None: from the prepared image set)."""

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        if cfg.image_size is None or cfg.channels is None:
            raise ValueError("model.stem image_size and channels must be set (from the data)")
        layers = {"depth": cfg.depth, "downsample": cfg.downsample}
        side = feature_side(layers, cfg.image_size, "the model")
        widths = [cfg.channels] + [cfg.width] * (cfg.depth - 1) + [model.d_model]
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2 if i < cfg.downsample else 1, padding=1)
            for i in range(cfg.depth)
        )
        self.side, self.num_tokens = side, side * side
        # multiply-adds per image of each layer: out cells · out channels · in channels · 9
        sides = [cfg.image_size // 2 ** min(i + 1, cfg.downsample) for i in range(cfg.depth)]
        self.macs = sum(s * s * widths[i + 1] * widths[i] * 9 for i, s in enumerate(sides))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, T, d_model) feature-map cells in raster order."""
        x = images
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = F.gelu(x)
        return x.flatten(2).transpose(1, 2)

    def reset_parameters(self, std: float | None = None) -> None:
        # PyTorch's fan-in init, not the blocks' small normal: a stack of convolutions started
        # at std 0.02 passes almost no signal through to the loss
        for conv in self.convs:
            conv.reset_parameters()

    def embedding_params(self) -> int:
        return 0

    def flops_per_token(self, head_fraction: float) -> float:
        return 6.0 * self.macs / self.num_tokens  # the convolutions; no LM head
