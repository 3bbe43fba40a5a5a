"""``slot_ae``: a Slot Attention autoencoder (Locatello et al. 2020), the object-centric
pretraining of OCR-RL (Yoon et al. 2023; ``papers/ocr_rl.md``).

The run's model (``patches`` stem) encodes the whole image bidirectionally; Slot Attention
(``thrifty.models.slots``, owned here) groups its patch tokens into K slots; a spatial
broadcast decoder (owned) paints each slot on its own — the slot copied to every cell of a
coarse grid with a position code, then convolutions up to full size — as colours and an alpha
logit; the alphas are softmaxed over slots into masks, and the image is the masked sum. The
loss is the mean squared error of that reconstruction. Slots have to split the image between
them to reconstruct it, which is what makes them object-like. Their initial noise is drawn per
row from ``Objective.random``, so a data-parallel step equals the one-process step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.models.slots import SlotAttention, gaussian_noise
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output, row_term
from thrifty.objectives.mae import patch_stem

UPSAMPLE = 4  # the decoder's two stride-2 transposed convolutions


class BroadcastDecoder(nn.Module):
    """(B, K, D) slots -> colours (B, K, C, H, W) and alpha logits (B, K, 1, H, W)."""

    def __init__(self, dim: int, width: int, channels: int, image_size: int) -> None:
        super().__init__()
        if image_size % UPSAMPLE:
            raise UserError(
                f"objective slot_ae decodes images whose side divides by {UPSAMPLE}; "
                f"these are {image_size}x{image_size}"
            )
        self.grid, self.channels, self.width = image_size // UPSAMPLE, channels, width
        self.dim = dim
        g = torch.linspace(0, 1, self.grid)
        y, x = torch.meshgrid(g, g, indexing="ij")
        # Slot Attention's soft position code: a linear map of the distances to the 4 edges
        self.register_buffer("coords", torch.stack([x, y, 1 - x, 1 - y]), persistent=False)
        self.position = nn.Conv2d(4, dim, 1)
        self.net = nn.Sequential(
            nn.Conv2d(dim, width, 3, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, channels + 1, 3, padding=1),
        )

    def forward(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, K, D = slots.shape
        x = slots.reshape(B * K, D, 1, 1).expand(-1, -1, self.grid, self.grid)
        x = self.net(x + self.position(self.coords[None]))  # (B·K, C+1, H, W)
        x = x.reshape(B, K, *x.shape[1:])
        return x[:, :, : self.channels], x[:, :, self.channels :]

    def flops(self, num_slots: int) -> float:
        """Forward FLOPs for one image (2 per multiply-add of the convolutions)."""
        g, w, c = self.grid, self.width, self.channels + 1
        macs = self.dim * w * 9 * g**2 + w * w * 16 * g**2 + w * w * 16 * (2 * g) ** 2
        macs += w * c * 9 * (UPSAMPLE * g) ** 2
        return 2.0 * num_slots * macs


class SlotNets(nn.Module):
    """The networks ``slot_ae`` trains besides the model (``objective.safetensors``)."""

    def __init__(self, cfg, d_model: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.slots = SlotAttention(d_model, cfg.slot_dim, cfg.num_slots, cfg.iterations)
        self.decoder = BroadcastDecoder(cfg.slot_dim, cfg.decoder_width, channels, image_size)


def encode_slots(
    model, slots: SlotAttention, images: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slots (B, K, D) and attention (B, K, N) of images (B, C, H, W) in [0, 1]."""
    return slots(model(images, causal=False), noise)


@OBJECTIVES.register("slot_ae")
class SlotAutoencoder(Objective):
    kind = "encoder"

    @dataclass(kw_only=True)
    class Config:
        num_slots: int = bounded(4, ge=1)
        """K: slots an image is grouped into (objects plus background)."""
        iterations: int = bounded(3, ge=1)
        """T: rounds of competitive attention and GRU updates."""
        slot_dim: int = bounded(64, ge=2)
        """Width of a slot."""
        decoder_width: int = bounded(32, ge=1)
        """Channels of the spatial broadcast decoder's convolutions."""

    def __init__(self, cfg, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        stem = patch_stem(model)
        side = stem.patch * int(round(stem.num_patches**0.5))
        self.num_patches = stem.num_patches
        channels = stem.patch_dim // stem.patch**2
        self.owned = SlotNets(cfg, model.cfg.d_model, channels, side).to(stem.position.device)

    def __call__(self, batch: Batch) -> Output:
        images = batch.inputs["images"]  # (B, C, H, W) in [0, 1]
        K, D = self.cfg.num_slots, self.cfg.slot_dim
        noise = gaussian_noise(self.random(batch, "slots").rand(K, D)).to(images.device)
        slots, _ = encode_slots(self.model, self.owned.slots, images, noise)
        colours, alpha = self.owned.decoder(slots)
        masks = alpha.float().softmax(1)  # (B, K, 1, H, W): the slots share every pixel
        reconstruction = (masks * colours.float()).sum(1)
        errors = (reconstruction - images.float()).square().flatten(1)  # (B, C·H·W)
        term, per_row = row_term(errors, batch.weights)
        loss = term.value
        return Output(loss, {"loss": loss.detach()}, per_row.detach(), {"slot_ae": term})

    def head_fraction(self) -> float:
        return 0.0

    def extra_flops_per_token(self, seq_len: int) -> float:
        # forward and backward (3x) of slot attention and the decoder, per patch of an image
        per_image = self.owned.slots.flops(self.num_patches)
        per_image += self.owned.decoder.flops(self.cfg.num_slots)
        return 3.0 * per_image / self.num_patches
