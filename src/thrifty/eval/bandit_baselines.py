"""Classic bandit algorithms that DPT is compared with (Lee et al. 2023, section 5.1).

Online: UCB1 (Auer et al. 2002) and Thompson sampling with the tasks' own prior (U[0, 1] means
approximated by a Gaussian of the same mean and variance, known noise; Beta(1, 1) for
Bernoulli rewards). Offline, from a fixed dataset: LCB (the pessimistic choice DPT is shown to
resemble) and the greedy empirical best. Each works on a batch of tasks at once: ``counts`` and
``sums`` (B, K) are the pulls and summed rewards of each arm so far.
"""

from __future__ import annotations

import math

import numpy as np
import torch

PRIOR_MEAN, PRIOR_VAR = 0.5, 1.0 / 12.0  # U[0, 1]


def arm_stats(actions: torch.Tensor, rewards: torch.Tensor, arms: int) -> tuple:
    """(counts, sums), each (B, K), of histories ``actions`` / ``rewards`` (B, n)."""
    counts = torch.zeros(actions.shape[0], arms).scatter_add_(
        1, actions.long(), torch.ones_like(rewards)
    )
    sums = torch.zeros(actions.shape[0], arms).scatter_add_(1, actions.long(), rewards.float())
    return counts, sums


def ucb(
    counts: torch.Tensor, sums: torch.Tensor, t: int, generator: torch.Generator
) -> torch.Tensor:
    """UCB1: every arm once, then the best mean + sqrt(2 ln t / n_a)."""
    bonus = torch.sqrt(2 * math.log(max(t, 1)) / counts.clamp(min=1))
    score = sums / counts.clamp(min=1) + bonus
    score = torch.where(counts == 0, torch.full_like(score, math.inf), score)
    return _argmax_random_ties(score, generator)


def thompson(
    counts: torch.Tensor,
    sums: torch.Tensor,
    t: int,
    generator: torch.Generator,
    noise: str = "gaussian",
    sigma: float = 0.3,
) -> torch.Tensor:
    """Thompson sampling: pull the arm whose mean, drawn from its posterior, is largest."""
    if noise == "bernoulli":
        a = (1 + sums).numpy()
        b = (1 + counts - sums).clamp(min=1e-6).numpy()
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        draws = torch.from_numpy(np.random.default_rng(seed).beta(a, b)).float()
        return draws.argmax(1)
    precision = 1 / PRIOR_VAR + counts / sigma**2
    mean = (PRIOR_MEAN / PRIOR_VAR + sums / sigma**2) / precision
    draws = mean + precision.rsqrt() * torch.randn(mean.shape, generator=generator)
    return draws.argmax(1)


def lcb(counts: torch.Tensor, sums: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Offline LCB: the best mean - scale / sqrt(n_a); an arm never pulled is never chosen
    (unless none was)."""
    score = sums / counts.clamp(min=1) - scale / counts.clamp(min=1).sqrt()
    return torch.where(counts == 0, torch.full_like(score, -math.inf), score).argmax(1)


def greedy(counts: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
    """Offline empirical best arm (never-pulled arms last)."""
    score = sums / counts.clamp(min=1)
    return torch.where(counts == 0, torch.full_like(score, -math.inf), score).argmax(1)


def _argmax_random_ties(score: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    jitter = torch.rand(score.shape, generator=generator) * 1e-9
    return (score + jitter).argmax(1)
