"""Accuracy of an image classifier run's own head on a split of a prepared image set: the
``classify`` and ``scalekd`` objectives train a linear head on the encoder's mean-pooled final
states and save it in ``objective.safetensors`` (``head.weight``, ``head.bias``). Nothing is
fitted here, unlike the frozen-feature probes of ``thrifty.eval.image_probe``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from thrifty.data.images import load_split
from thrifty.errors import UserError
from thrifty.models.stem.patches import mean_features

HEAD = "objective.safetensors"


def load_head(loaded) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (K, C), bias (K,)) of a loaded run's classification head."""
    from safetensors.torch import load_file

    if HEAD not in loaded.state.get("files", {}):
        raise UserError(f"{loaded.checkpoint} has no {HEAD}: its objective trains no head")
    weights = load_file(str(loaded.checkpoint / HEAD))
    if "head.weight" not in weights:
        raise UserError(
            f"{loaded.checkpoint}: objective {loaded.cfg.objective.get('name')!r} has no "
            "classification head (objective classify or scalekd)"
        )
    return weights["head.weight"], weights["head.bias"]


@torch.no_grad()
def head_accuracy(loaded, data_path: str | Path, split: str = "test", batch: int = 256) -> float:
    """Share of ``split``'s images the run's encoder and head put in their labelled class."""
    weight, bias = load_head(loaded)
    model = loaded.model.eval()
    device = next(model.parameters()).device
    tensors = load_split(Path(data_path), split)
    correct = 0
    for s in range(0, len(tensors["labels"]), batch):
        images = tensors["images"][s : s + batch].float().to(device) / 255.0
        logits = mean_features(model, images).float() @ weight.T.to(device) + bias.to(device)
        correct += int((logits.argmax(-1).cpu() == tensors["labels"][s : s + batch]).sum())
    return correct / len(tensors["labels"])
