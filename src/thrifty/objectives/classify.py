"""``classify``: supervised image classification, the teacher ScaleKD distils from (Fan et al.
2024; `papers/scalekd.md`) and a plain cross-entropy baseline for any image stem.

The run's model (``patches`` or ``conv`` stem) reads the images bidirectionally; its feature
is the mean of the final hidden states (``mean_features``), and a linear head owned here maps
it to ``classes`` logits, trained with cross-entropy on the batch's ``labels``. The head is
saved with the run (``objective.safetensors``, keys ``head.weight`` and ``head.bias``), so a
student can load it frozen (``scalekd``) and ``thrifty.eval.image_classify`` can score it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.models.stem.conv import ConvStem
from thrifty.models.stem.patches import PatchStem, mean_features
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output, row_term


def image_stem(model, objective: str) -> PatchStem | ConvStem:
    """The model's image stem; a UserError for a model that does not read images."""
    stem = model.embed
    if not isinstance(stem, PatchStem | ConvStem):
        raise UserError(f"objective {objective} trains on images: set model.stem=patches or conv")
    return stem


def stem_tokens(stem: PatchStem | ConvStem) -> int:
    """Tokens one image becomes: its patches, or its feature map's cells."""
    return stem.num_patches if isinstance(stem, PatchStem) else stem.num_tokens


def checked_labels(batch: Batch, classes: int) -> torch.Tensor:
    """The batch's (B,) labels; a UserError when one is past ``objective.classes``."""
    labels = batch.inputs.get("labels")
    if labels is None:
        raise UserError("objective.classes: this objective needs labelled images (images:...)")
    largest = int(batch.on_host("labels").max()) if labels.numel() else -1  # no device read
    if largest >= classes:
        raise UserError(
            f"objective.classes={classes} is below the labels of the data (label {largest}); "
            "raise it"
        )
    return labels


def classify_step(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None
) -> tuple:
    """Cross-entropy term, per-row losses and accuracy of (B, K) logits."""
    losses = F.cross_entropy(logits.float(), labels, reduction="none")
    term, per_row = row_term(losses[:, None], weights)
    accuracy = (logits.argmax(-1) == labels).float().mean()
    return term, per_row, accuracy


@OBJECTIVES.register("classify")
class Classify(Objective):
    kind = "encoder"

    @dataclass(kw_only=True)
    class Config:
        classes: int = bounded(10, ge=2)
        """Classes the owned linear head predicts (labels must be below it)."""

    def __init__(self, cfg, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        stem = image_stem(model, "classify")
        self.tokens = stem_tokens(stem)
        device = next(stem.parameters()).device
        self.owned = nn.ModuleDict({"head": nn.Linear(model.cfg.d_model, cfg.classes)}).to(device)

    def __call__(self, batch: Batch) -> Output:
        labels = checked_labels(batch, self.cfg.classes)
        features = mean_features(self.model, batch.inputs["images"], batch.progress)
        term, per_row, accuracy = classify_step(self.owned["head"](features), labels, batch.weights)
        loss = term.value
        metrics = {"loss": loss.detach(), "accuracy": accuracy}
        return Output(loss, metrics, per_row.detach(), {"ce": term})

    def head_fraction(self) -> float:
        return 0.0

    def extra_flops_per_token(self, seq_len: int) -> float:
        return 6.0 * self.owned["head"].weight.numel() / self.tokens  # one head per image
