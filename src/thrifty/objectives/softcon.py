"""``softcon`` and ``simclr``: contrastive learning of an image encoder, with soft targets from
multi-label overlap (SoftCon, Wang et al. 2024) or with SimCLR's one positive (Chen et al. 2020).

Each image of the batch is seen in two augmented views (a random shift of up to ``shift``
pixels with zero padding, a random contrast scale and uniform pixel noise, all drawn per row
from ``Objective.random`` so they suit 8 to 16 pixel images and do not depend on the batch
split). The encoder's mean-pooled features go through a projection head (owned here) and are
L2-normalised; view v's predicted distribution over the other 2B - 1 views is
``softmax_w(z_v · z_w / temperature)``.

The target for anchor v mixes SimCLR's one-hot on v's partner view with SoftCon's soft
targets: ``p_v = (1 - label_weight) · onehot(partner) + label_weight · s_v / Σ s_v``, where
``s_vw`` is the Jaccard similarity of the multi-hot label sets (the ``targets`` field) of the
images behind v and w. The partner shows the same image, so ``s`` = 1 there: the self-positive
is always in the soft target, and images with overlapping labels share the rest. The loss is
the cross-entropy of q_v against p_v, averaged over the two views of each image. With
disjoint one-hot label sets only the partner has s > 0, so SoftCon equals SimCLR's InfoNCE
exactly; ``simclr`` is the same member with ``label_weight`` = 0 (it needs no labels).

The negatives are the other images of the global micro-batch: under torchrun each rank gathers
every rank's projections and label sets (``thrifty.objectives.cross_rank``, differentiable)
and scores its own images against all of them, SimCLR's cross-replica gathering, so a
2-process step equals the 1-process step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.models.stem.patches import mean_features
from thrifty.objectives import cross_rank
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output, row_term
from thrifty.objectives.mae import patch_stem


def jaccard(targets: torch.Tensor) -> torch.Tensor:
    """(B, B) Jaccard similarity |a ∩ b| / |a ∪ b| of (B, C) multi-hot rows (0 for two empty
    sets: they share nothing)."""
    t = targets.float()
    inter = t @ t.T
    union = t.sum(1)[:, None] + t.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def soft_targets(targets: torch.Tensor, label_weight: float) -> torch.Tensor:
    """(2B, 2B) target distribution of each view over the views from (B, C) multi-hot label
    sets (row v: anchor v; views 0..B-1 are the first views, B..2B-1 the second). The diagonal
    (a view and itself) is 0."""
    B = len(targets)
    s = jaccard(targets).repeat(2, 2)
    partner = torch.arange(2 * B).roll(B)
    s[partner, torch.arange(2 * B)] = 1.0  # the same image: always a positive
    s.fill_diagonal_(0.0)
    soft = s / s.sum(1, keepdim=True)
    hard = F.one_hot(partner, 2 * B).float()
    return (1 - label_weight) * hard + label_weight * soft


def contrastive_loss(
    z: torch.Tensor, temperature: float, target: torch.Tensor | None, images=None
) -> torch.Tensor:
    """Loss per image from (2B, D) normalised projections (views 0..B-1 first, then their
    partners), for the images at ``images`` (default: all B): the cross-entropy of each of the
    image's views' softmax over the other views against ``target`` (None: SimCLR's partner
    view), averaged over its two views."""
    n = len(z)
    images = torch.arange(n // 2, device=z.device) if images is None else images
    anchors = torch.cat([images, images + n // 2])
    logits = (z[anchors] @ z.T) / temperature
    own = torch.arange(len(anchors), device=z.device)
    logits[own, anchors] = float("-inf")  # a view is not its own candidate
    log_q = logits.log_softmax(1)
    if target is None:
        per_view = -log_q[own, (anchors + n // 2) % n]
    else:
        t = target[anchors].to(log_q)
        per_view = -(t * log_q.masked_fill(t == 0, 0.0)).sum(1)
    return per_view.view(2, -1).mean(0)


def augment(images: torch.Tensor, random, shift: int, noise: float, contrast: float):
    """(2B, C, H, W) two views of each image: shifted with zero padding, contrast-scaled, noised;
    view 0 of every image first, then view 1."""
    B, C, H, W = images.shape
    offsets = random.randint(0, 2 * shift + 1, 2, 2)  # (B, view, dy/dx)
    scale = 1 - contrast + 2 * contrast * random.rand(2)  # (B, view)
    jitter = (random.rand(2, C, H, W) * 2 - 1) * noise
    padded = F.pad(images, (shift, shift, shift, shift))
    views = []
    for v in range(2):
        crops = [
            padded[i, :, y : y + H, x : x + W] for i, (y, x) in enumerate(offsets[:, v].tolist())
        ]
        view = torch.stack(crops) * scale[:, v, None, None, None].to(images)
        views.append((view + jitter[:, v].to(images)).clamp(0, 1))
    return torch.cat(views)


class ContrastiveBase(Objective):
    kind = "encoder"

    @dataclass(kw_only=True)
    class Config:
        temperature: float = bounded(0.2, gt=0)
        """Softmax temperature of the view-to-view cosine similarities."""
        proj_dim: int = bounded(32, ge=1)
        """Width of the projection the loss compares (the probe reads the encoder, not this)."""
        proj_hidden: int = bounded(128, ge=1)
        """Hidden width of the two-layer projection head."""
        shift: int = bounded(2, ge=0)
        """Largest shift of a view in pixels (zero padding at the border)."""
        noise: float = bounded(0.1, ge=0)
        """Half-width of the uniform pixel noise added to a view (pixels are in [0, 1])."""
        contrast: float = bounded(0.3, ge=0, lt=1)
        """A view's pixels are scaled by a uniform factor in [1 - contrast, 1 + contrast]."""

    label_weight = 0.0

    def __init__(self, cfg, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        stem = patch_stem(model)
        self.num_patches = stem.num_patches
        width = model.cfg.d_model
        self.owned = nn.Sequential(
            nn.Linear(width, cfg.proj_hidden), nn.ReLU(), nn.Linear(cfg.proj_hidden, cfg.proj_dim)
        ).to(stem.position.device)

    def project(self, views: torch.Tensor, progress: float | None = None) -> torch.Tensor:
        features = mean_features(self.model, views, progress)
        return F.normalize(self.owned(features).float(), dim=-1)

    def targets(self, batch: Batch) -> torch.Tensor | None:
        """(2N, 2N) soft targets over the global micro-batch's views (None: SimCLR's)."""
        if self.label_weight == 0:
            return None
        if "targets" not in batch.inputs:
            raise UserError(
                f"objective.label_weight={self.label_weight} needs multi-hot targets: prepare "
                "images:mosaic, or use objective.name=simclr"
            )
        every, _ = cross_rank.gather(batch.inputs["targets"])
        return soft_targets(every, self.label_weight)

    def __call__(self, batch: Batch) -> Output:
        images = batch.inputs["images"]
        cfg = self.cfg
        views = augment(images, self.random(batch, "views"), cfg.shift, cfg.noise, cfg.contrast)
        target = self.targets(batch)
        z = self.project(views, batch.progress)
        B = len(images)
        first_views, first = cross_rank.gather(z[:B])  # every rank's, in the one-process order
        partners, _ = cross_rank.gather(z[B:])
        mine = torch.arange(first, first + B, device=z.device)
        losses = contrastive_loss(torch.cat([first_views, partners]), cfg.temperature, target, mine)
        term, per_row = row_term(losses[:, None], batch.weights)
        loss = term.value
        return Output(loss, {"loss": loss.detach()}, per_row.detach(), {"contrastive": term})

    def head_fraction(self) -> float:
        return 0.0

    def flops_per_token(self, seq_len: int) -> float:
        # the encoder and the projection run on two views of every image
        head = sum(m.weight.numel() for m in self.owned if isinstance(m, nn.Linear))
        encoder = self.model.flops_per_token(self.num_patches, 0.0)
        return 2 * (encoder + 6.0 * head / self.num_patches)


@OBJECTIVES.register("simclr")
class SimCLR(ContrastiveBase):
    pass


@OBJECTIVES.register("softcon")
class SoftCon(ContrastiveBase):
    @dataclass(kw_only=True)
    class Config(ContrastiveBase.Config):
        label_weight: float = bounded(1.0, ge=0, le=1)
        """Share of the target from label overlap (Jaccard); 0 is SimCLR's one positive."""

    def __init__(self, cfg, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        self.label_weight = cfg.label_weight
