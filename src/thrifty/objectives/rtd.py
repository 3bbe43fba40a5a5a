"""Building blocks of replaced-token detection (ELECTRA, Clark et al. 2020; DeBERTaV3, He et al.
2021; MCL, Chen et al. 2023): the generator and heads the objective trains beside the
discriminator, loss terms, and detection metrics. The objectives are ``electra.py`` and
``mcl.py``; the embedding-sharing choice is explained in ``electra.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.config import ModelConfig
from thrifty.models.heads import DiscriminatorHead, ProjectedLMHead
from thrifty.models.transformer import Transformer
from thrifty.objectives.base import LossTerm


def generator_config(model: ModelConfig, width: float, depth: float) -> ModelConfig:
    """The generator's ModelConfig: ``width`` x d_model, ``depth`` x layers, same head size.

    Keeping the discriminator's head size follows ELECTRA (heads = hidden // 64); d_ff follows
    the SwiGLU rule for the new width.
    """
    head_dim = model.d_model // model.n_heads
    d = max(2, round(width * model.d_model))
    heads = max(1, d // head_dim)
    d = heads * max(2, 2 * round(d / heads / 2))
    layers = max(1, round(depth * model.n_layers))
    return replace(model, d_model=d, n_heads=heads, n_layers=layers, d_ff=None)


class ProjectedEmbedding(nn.Module):
    """Token lookup in a (V, d_embed) table that may belong to another network, projected to
    the generator's width. ``weight`` is that table (the generator's LM head reads it too)."""

    def __init__(self, table: Callable[[], torch.Tensor], d_embed: int, d_model: int) -> None:
        super().__init__()
        self._table = table  # a callable, not a submodule: the table is owned elsewhere
        self.proj = nn.Linear(d_embed, d_model, bias=False)
        nn.init.normal_(self.proj.weight, 0.0, d_embed**-0.5)

    @property
    def weight(self) -> torch.Tensor:
        return self._table()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(F.embedding(ids, self._table()))

    def embedding_params(self) -> int:  # the stem interface (thrifty.models.stem.base)
        return self.weight.numel()

    def flops_per_token(self, head_fraction: float) -> float:
        return 6.0 * head_fraction * self.weight.numel()  # the generator's tied head


class ElectraParts(nn.Module):
    """Everything ELECTRA trains besides the discriminator: generator, heads, E_G, E_Δ."""

    def __init__(self, cfg, disc: Transformer) -> None:
        """``cfg``: the objective's config (generator_width, generator_depth, embedding_sharing)."""
        super().__init__()
        mc = disc.cfg
        gen_cfg = generator_config(mc, cfg.generator_width, cfg.generator_depth)
        self.generator = Transformer(gen_cfg)
        self.gen_embed: nn.Parameter | None = None
        self.embed_delta: nn.Parameter | None = None
        if cfg.embedding_sharing == "es":
            table = lambda: disc.embed.weight  # noqa: E731
        else:
            self.gen_embed = nn.Parameter(disc.embed.weight.detach().clone())
            table = lambda: self.gen_embed  # noqa: E731
        if cfg.embedding_sharing == "gdes":
            self.embed_delta = nn.Parameter(torch.zeros_like(disc.embed.weight.detach()))
        self.generator.embed = ProjectedEmbedding(table, mc.d_model, gen_cfg.d_model)
        self.gen_head = ProjectedLMHead(gen_cfg.d_model, mc.d_model, mc.norm_eps)
        self.rtd_head = DiscriminatorHead(mc.d_model, mc.init_std)

    def table(self) -> torch.Tensor:
        """The generator's embedding table E_G (the discriminator's under ``es``)."""
        return self.generator.embed.weight


@dataclass
class Term:
    """One named loss term: ``total / count`` on this rank (see ``LossTerm``), and its detached
    per-row means (for samplers)."""

    total: torch.Tensor
    count: torch.Tensor
    per_row: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return LossTerm(self.total, self.count).value


@dataclass
class Corruption:
    masked: torch.Tensor
    """(B, T) the generator's input (chosen positions mostly <mask>)."""
    chosen: torch.Tensor
    """(B, T) bool: positions the generator predicted and resampled."""
    corrupted: torch.Tensor
    """(B, T) the discriminator's input: samples at chosen positions, the input elsewhere."""
    labels: torch.Tensor
    """(B, T) bool: corrupted != input (a sample equal to the original is not replaced)."""
    gen: Term
    gen_accuracy: torch.Tensor


@dataclass
class Detection:
    term: Term
    logits: torch.Tensor
    """(B, T) detached discriminator logits ("replaced" when > 0)."""
    bce: torch.Tensor
    """(B, T) detached per-token BCE."""
    metrics: dict[str, torch.Tensor]


def row_mean(values: torch.Tensor, where: torch.Tensor, weights: torch.Tensor | None) -> Term:
    """Mean of (B, T) ``values`` over ``where``: token mean, or Σ_i w_i · row-mean_i / Σ_i w_i."""
    where = where.to(values.dtype)
    counts = where.sum(1)
    per_row = (values * where).sum(1) / counts.clamp(min=1)
    if weights is not None:
        return Term((weights * per_row).sum(), weights.sum().detach(), per_row.detach())
    return Term((values * where).sum(), counts.sum().detach(), per_row.detach())


def detection_metrics(
    logits: torch.Tensor, labels: torch.Tensor, real: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Precision and recall of "replaced" at logit > 0 (0 when undefined), and ROC-AUC, over
    real tokens. AUC shows progress while the discriminator still sits near the label prior
    and predicts "original" everywhere (precision and recall 0). 0-dim tensors: nothing is read
    back from the device."""
    exact = torch.float32 if logits.device.type == "mps" else torch.float64  # mps: no float64
    pred, truth = (logits > 0) & real, labels & real
    tp = (pred & truth).sum(dtype=exact)
    n_pos, n_neg = truth.sum(dtype=exact), (real & ~labels).sum(dtype=exact)
    # ranks among the real tokens (1-based): padding sorts first at -inf, and is subtracted
    scores = logits.to(exact).masked_fill(~real, float("-inf")).flatten()
    ranks = scores.argsort(stable=True).argsort(stable=True).to(exact) + 1 - (~real).sum()
    mann_whitney = (ranks * truth.flatten()).sum() - n_pos * (n_pos + 1) / 2
    auc = torch.where((n_pos > 0) & (n_neg > 0), mann_whitney / (n_pos * n_neg).clamp(min=1), 0.5)
    return {
        "precision": tp / pred.sum(dtype=exact).clamp(min=1),
        "recall": tp / n_pos.clamp(min=1),
        "auc": auc,
        "positive": n_pos / real.sum(dtype=exact).clamp(min=1),
    }
