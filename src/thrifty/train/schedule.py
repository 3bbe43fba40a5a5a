"""How long a run is: the step count implied by its stopping rules, and BabyLM's word marks."""

from __future__ import annotations

import math

from thrifty.config import TrainConfig
from thrifty.errors import UserError


def plan_steps(
    cfg: TrainConfig, num_windows: int, rows_per_step: int, seq_len: int, words_per_token: float
) -> int:
    """Optimizer steps until the first of max_steps / max_tokens / max_words / max_epochs."""
    tokens_per_step = rows_per_step * seq_len
    candidates = []
    if cfg.max_steps is not None:
        candidates.append(cfg.max_steps)
    if cfg.max_tokens is not None:
        candidates.append(math.ceil(cfg.max_tokens / tokens_per_step))
    if cfg.max_words is not None:
        candidates.append(math.ceil(cfg.max_words / (tokens_per_step * words_per_token)))
    if cfg.max_epochs is not None:
        candidates.append(math.ceil(cfg.max_epochs * num_windows / rows_per_step))
    steps = min(candidates)
    if steps < 1:
        raise UserError("train: the stopping rule allows zero steps; raise max_steps/tokens/words")
    return steps


def word_marks() -> list[int]:
    """BabyLM checkpoint marks: every 1M words up to 10M, then every 10M up to 100M."""
    return [m * 1_000_000 for m in range(1, 10)] + [m * 10_000_000 for m in range(1, 11)]
