"""Objective protocol: ``objective(batch) -> Output(loss, metrics, sample_losses)``.

Objectives know the model but nothing of the loop. The loop hands them a ``Batch`` of token
windows plus where training stands (``progress``) so schedules such as GPT-BERT's mask-rate
annealing live with the objective that owns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from thrifty.models.transformer import Transformer
from thrifty.registry import Registry

OBJECTIVES = Registry("objective")

IGNORE = -100


@dataclass
class Batch:
    ids: torch.Tensor
    """(B, T+1) token windows; position t+1 is the next token of position t."""
    weights: torch.Tensor | None = None
    """(B,) per-sample weights that sum to 1 (None: every supervised token counts equally)."""
    progress: float = 0.0
    """Fraction of training done, in [0, 1]."""
    micro: int = 0
    """Global index of this micro-batch since the start of training."""


@dataclass
class Output:
    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    sample_losses: torch.Tensor | None = None
    """(B,) detached mean loss per row, in batch order, for loss-aware samplers."""


class Objective:
    """Base class: holds the model and a seeded generator for the objective's own randomness."""

    default_backend = "causal"
    """Scoring backend that suits models trained with this objective."""

    def __init__(self, cfg, model: Transformer, *, seed: int = 0) -> None:
        self.cfg = cfg
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: Batch) -> Output:
        raise NotImplementedError

    def head_fraction(self) -> float:
        """Average share of positions the LM head is applied to (for FLOP counts)."""
        return 1.0

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def token_loss(
    model: Transformer,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None,
    z_loss: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Cross-entropy of ``targets`` (B, T; IGNORE where unsupervised) read from ``hidden``.

    The LM head runs only on supervised positions (MLM supervises ~15% of them). Returns the
    loss (token mean, or Σ_i w_i · row-mean_i when weights are given), the detached per-row
    mean losses, and accuracy metrics.
    """
    supervised = targets != IGNORE  # (B, T)
    logits = model.logits(hidden[supervised]).float()  # (N, V)
    y = targets[supervised]
    losses = F.cross_entropy(logits, y, reduction="none")  # (N,)
    if z_loss:
        losses = losses + z_loss * torch.logsumexp(logits, dim=-1).pow(2)
    rows = supervised.nonzero()[:, 0]
    counts = supervised.sum(1).clamp(min=1)
    per_row = torch.zeros(targets.shape[0], device=losses.device).index_add(0, rows, losses) / counts
    loss = (weights * per_row).sum() if weights is not None else losses.mean()
    with torch.no_grad():
        acc = (logits.argmax(-1) == y).float().mean().item() if y.numel() else 0.0
    return loss, per_row.detach(), {"accuracy": acc, "supervised": float(y.numel())}
