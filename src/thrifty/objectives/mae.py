"""``mae``: masked autoencoding of image patches (He et al. 2022; the single-modality case of
MultiMAE, Bachmann et al. 2022).

Each image keeps a random ``1 - mask_ratio`` share of its patches; the encoder (the run's
model, ``patches`` stem) reads only those, each at its own position. A small decoder (owned
here) places a learned mask token at every hidden patch, adds its own position embedding,
runs ``decoder_depth`` of thrifty's blocks bidirectionally, and predicts every patch's pixels.
The loss is the mean squared error on the hidden patches only, against pixels normalised per
patch (``norm_pix``: MAE's better target). Which patches stay visible is drawn per row from
``Objective.random``, so a data-parallel step equals the one-process step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.models.block import BLOCKS
from thrifty.models.norm import RMSNorm
from thrifty.models.rope import rope_tables
from thrifty.models.stem.patches import PatchStem, patchify
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output, row_term


def visible_count(num_patches: int, mask_ratio: float) -> int:
    """Patches an image keeps visible; a UserError when none or all would be hidden."""
    visible = round(num_patches * (1 - mask_ratio))
    if not 0 < visible < num_patches:
        raise UserError(
            f"objective.mask_ratio={mask_ratio} leaves {visible} of {num_patches} patches "
            "visible; it must hide some and keep some"
        )
    return visible


def patch_stem(model) -> PatchStem:
    stem = model.embed
    if not isinstance(stem, PatchStem):
        raise UserError("this objective trains an image encoder: set model.stem=patches")
    return stem


class PatchDecoder(nn.Module):
    """Encoder states of the visible patches -> pixels of every patch."""

    def __init__(
        self, model_cfg, width: int, depth: int, heads: int, num_patches: int, patch_dim: int
    ) -> None:
        super().__init__()
        cfg = replace(model_cfg, d_model=width, n_layers=depth, n_heads=heads, d_ff=None)
        self.cfg = cfg
        self.enter = nn.Linear(model_cfg.d_model, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.position = nn.Parameter(torch.randn(num_patches, width) * 0.02)
        self.blocks = nn.ModuleList(BLOCKS.build(cfg.block, cfg) for _ in range(depth))
        for block in self.blocks:
            block.reset_parameters(cfg.init_std, cfg.init_std / (2 * depth) ** 0.5)
        self.norm = RMSNorm(width, cfg.norm_eps)
        self.out = nn.Linear(width, patch_dim)
        cos, sin = rope_tables(
            width // heads, num_patches, cfg.rope_theta, "none", 1.0, num_patches
        )
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        B, N = hidden.shape[0], self.position.shape[0]
        x = self.mask_token.expand(B, N, -1).clone()
        entered = self.enter(hidden).to(x.dtype)  # bf16 under autocast, as CUDA runs by default
        x.scatter_(1, keep[..., None].expand(-1, -1, x.shape[-1]), entered)
        x = x + self.position
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin, False, None)
        return self.out(self.norm(x))

    def flops_per_token(self, num_patches: int) -> float:
        linears = self.enter.weight.numel() + self.out.weight.numel()
        return sum(b.flops_per_token(num_patches) for b in self.blocks) + 6.0 * linears


@OBJECTIVES.register("mae")
class MaskedAutoencoder(Objective):
    kind = "encoder"

    @dataclass(kw_only=True)
    class Config:
        mask_ratio: float = bounded(0.75, gt=0, lt=1)
        """Share of each image's patches hidden from the encoder."""
        decoder_width: int = bounded(64, ge=2)
        decoder_depth: int = bounded(1, ge=1)
        decoder_heads: int = bounded(2, ge=1)
        norm_pix: bool = True
        """Predict each patch's pixels normalised by its own mean and std."""

    def __init__(self, cfg, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        stem = patch_stem(model)
        self.num_patches, self.patch = stem.num_patches, stem.patch
        self.visible = visible_count(self.num_patches, cfg.mask_ratio)
        if cfg.norm_pix and stem.patch_dim == 1:  # one value has no spread to normalise by
            raise UserError(
                "objective.norm_pix=true needs patches of more than one value: raise "
                "model.stem.patch_size or set objective.norm_pix=false"
            )
        device = stem.position.device
        self.owned = PatchDecoder(
            model.cfg,
            cfg.decoder_width,
            cfg.decoder_depth,
            cfg.decoder_heads,
            self.num_patches,
            stem.patch_dim,
        ).to(device)

    def __call__(self, batch: Batch) -> Output:
        images = batch.inputs["images"]
        B, N = images.shape[0], self.num_patches
        noise = self.random(batch, "mae").rand(N).to(images.device)  # (B, N)
        keep = noise.argsort(1)[:, : self.visible].sort(1).values
        hidden = self.model(images, causal=False, keep=keep, progress=batch.progress)
        predicted = self.owned(hidden, keep).float()
        target = patchify(images, self.patch).float()
        if self.cfg.norm_pix:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        hidden_patch = torch.ones(B, N, dtype=torch.bool, device=images.device)
        hidden_patch.scatter_(1, keep, False)
        errors = (predicted - target).square().mean(-1)  # (B, N)
        term, per_row = row_term(errors, batch.weights, hidden_patch)
        loss = term.value
        return Output(loss, {"loss": loss.detach()}, per_row.detach(), {"mae": term})

    def head_fraction(self) -> float:
        return 0.0

    def flops_per_token(self, seq_len: int) -> float:
        # the encoder runs on the visible share of the patches; the decoder on all of them
        share = self.visible / self.num_patches
        encoder = self.model.flops_per_token(self.visible) * share
        return encoder + self.owned.flops_per_token(self.num_patches)
