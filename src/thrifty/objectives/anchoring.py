"""Terms that keep a model's behaviour on replayed text close to a frozen start model's: GeRe's
threshold-based margin loss (Zhang et al. 2025, arXiv 2508.04676; `papers/gere.md` §2) and the
baselines it is compared with (KL logit imitation, L1 / L2 feature imitation).

TM only asks every activation to stay in its original *state* relative to the band μ ± kσ of
its hidden dimension (below, inside, above), where μ and σ are statistics of the start model's
last hidden states over the replay set. Feature imitation asks for the exact values, which the
paper finds over-constraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thrifty.models.transformer import Transformer

TM_EPS = 1e-8  # GeRe's code: sum of penalties / (number of non-zero penalties + 1e-8)


@torch.no_grad()
def hidden_thresholds(
    teacher: Transformer,
    windows: torch.Tensor,
    *,
    causal: bool,
    sigmas: float = 1.0,
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) per hidden dimension: μ ∓ kσ of ``teacher``'s last hidden states over every
    position of ``windows`` (N, T+1); inputs are each window's first T tokens. Accumulated in
    float64 so that the statistics do not depend on the batch size."""
    device = next(teacher.parameters()).device
    total = sq = None
    count = 0
    for part in windows.split(batch_size):
        h = teacher(part[:, :-1].to(device), causal=causal).double()  # (b, T, C)
        flat = h.reshape(-1, h.shape[-1])
        total = flat.sum(0) if total is None else total + flat.sum(0)
        sq = flat.square().sum(0) if sq is None else sq + flat.square().sum(0)
        count += flat.shape[0]
    mean = total / count
    std = (sq / count - mean.square()).clamp_min(0).sqrt()  # population σ
    return (mean - sigmas * std).float(), (mean + sigmas * std).float()


def margin_penalties(
    h: torch.Tensor, h0: torch.Tensor, low: torch.Tensor, high: torch.Tensor
) -> torch.Tensor:
    """Per-element TM penalties: the start model's activation ``h0`` puts each element in a
    state (≥ high: positive, ≤ low: negative, else neutral); ``h`` pays for leaving it."""
    positive, negative = h0 >= high, h0 <= low
    neutral = F.relu(h - high) + F.relu(low - h)
    return torch.where(negative, F.relu(h - low), torch.where(positive, F.relu(high - h), neutral))


def margin_loss(
    h: torch.Tensor, h0: torch.Tensor, low: torch.Tensor, high: torch.Tensor
) -> torch.Tensor:
    """GeRe's L_TM: the mean penalty over violating elements only (0 when none violates)."""
    pen = margin_penalties(h.float(), h0.float(), low, high)
    return pen.sum() / ((pen != 0).sum() + TM_EPS)


def kl_imitation(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """KL(teacher ‖ student) of the temperature-softened next-token distributions, per position,
    times T² (Hinton et al.'s scaling, so the gradient size does not depend on T)."""
    t = temperature
    s = F.log_softmax(student_logits.float() / t, dim=-1)
    q = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(s, q, log_target=True, reduction="batchmean") * t * t


def feature_imitation(h: torch.Tensor, h0: torch.Tensor, norm: str) -> torch.Tensor:
    """Mean |h − h0| (``l1``) or (h − h0)² (``l2``) over every element."""
    diff = h.float() - h0.float()
    return diff.abs().mean() if norm == "l1" else diff.square().mean()
