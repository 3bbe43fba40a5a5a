"""The CNN baselines of OCR-RL (Yoon et al. 2023; ``papers/ocr_rl.md``): one small convolutional
encoder, trained from scratch inside PPO, or pretrained as an autoencoder on the same frames
as the slots and then frozen.

``ConvEncoder`` maps a (3, S, S) frame (S divisible by 4) to a ``latent``-wide vector through
two stride-2 convolutions; ``pretrain_cnn_ae`` trains it with a mirror-image decoder on the
mean squared reconstruction error and writes a folder: ``encoder.safetensors``,
``result.json`` (settings, losses) and ``ledger.json`` (the frames' ledger with the images the
autoencoder read charged), atomically. Batches are drawn from ``seed``; same seed, same
threads, same weights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thrifty.atomic import new_folder
from thrifty.data.budget import LEDGER_FILE, Ledger
from thrifty.errors import UserError

ENCODER_FILE = "encoder.safetensors"
RESULT_FILE = "result.json"


class ConvEncoder(nn.Module):
    """(B, C, S, S) float in [0, 1] -> (B, latent)."""

    def __init__(self, channels: int, size: int, latent: int = 64, width: int = 32) -> None:
        super().__init__()
        if size % 4:
            raise UserError(f"the CNN encoder needs frames whose side divides by 4, not {size}")
        self.channels, self.size, self.latent, self.width = channels, size, latent, width
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(width * (size // 4) ** 2, latent),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class ConvDecoder(nn.Module):
    """(B, latent) -> (B, C, S, S): the encoder's mirror image."""

    def __init__(self, encoder: ConvEncoder) -> None:
        super().__init__()
        w, g = encoder.width, encoder.size // 4
        self.net = nn.Sequential(
            nn.Linear(encoder.latent, w * g * g),
            nn.Unflatten(1, (w, g, g)),
            nn.ReLU(),
            nn.ConvTranspose2d(w, w, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(w, encoder.channels, 4, stride=2, padding=1),
        )

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent)


def pretrain_cnn_ae(
    frames: str | Path,
    out: str | Path,
    *,
    steps: int = 500,
    batch_size: int = 32,
    lr: float = 1e-3,
    latent: int = 64,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train a convolutional autoencoder on the ``train`` frames of a prepared image set and
    write its encoder to ``out``; returns the result."""
    from safetensors.torch import save_model

    from thrifty.data.images import load_split
    from thrifty.data.tokens import load_manifest

    out, frames = Path(out), Path(frames)
    if (out / ENCODER_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a pretrained CNN autoencoder is already here; pass --overwrite")
    if steps < 1 or batch_size < 1:
        raise UserError(f"steps={steps}, batch_size={batch_size}: both must be at least 1")
    manifest = load_manifest(frames)
    images = load_split(frames, "train")["images"]
    channels, size, _ = manifest["image_shape"]
    torch.manual_seed(seed)
    encoder = ConvEncoder(channels, size, latent)
    decoder = ConvDecoder(encoder)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    began, losses = time.perf_counter(), []
    for _ in range(steps):
        batch = images[torch.randint(len(images), (batch_size,), generator=generator)]
        batch = batch.float() / 255.0
        loss = (decoder(encoder(batch)) - batch).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    ledger = Ledger.from_dict(manifest["ledger"], f"{frames} manifest ledger")
    ledger.words_seen = float(steps * batch_size)
    result = {
        "frames": str(frames),
        "image_shape": [channels, size, size],
        "settings": dict(steps=steps, batch_size=batch_size, lr=lr, latent=latent, seed=seed),
        "first_loss": losses[0],
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "seconds": time.perf_counter() - began,
    }
    with new_folder(out) as tmp:
        save_model(encoder, str(tmp / ENCODER_FILE))
        (tmp / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
        ledger.save(tmp / LEDGER_FILE)
    return result


def load_cnn_ae(folder: str | Path) -> tuple[ConvEncoder, dict]:
    """The pretrained encoder of a ``pretrain_cnn_ae`` folder and its ledger (as a dict)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / ENCODER_FILE).is_file():
        raise UserError(f"--encoder={folder}: no {ENCODER_FILE}; pretrain a CNN autoencoder")
    result = json.loads((folder / RESULT_FILE).read_text())
    channels, size, _ = result["image_shape"]
    encoder = ConvEncoder(channels, size, result["settings"]["latent"])
    encoder.load_state_dict(load_file(str(folder / ENCODER_FILE)))
    return encoder, json.loads((folder / LEDGER_FILE).read_text())
