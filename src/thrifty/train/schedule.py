"""How long a run is: the step count implied by its stopping rules, and BabyLM's word marks.

Every rule is a cap that the run never exceeds: the step count is rounded *down*, so a run stops
before the step that would cross ``max_tokens``, ``max_words`` or ``max_epochs`` (the last step is
never trimmed to a smaller batch; it is left out). The run therefore falls short of a cap by
less than one optimizer step. ``max_epochs`` counts windows served: at most
``max_epochs × num_windows`` of them, which also keeps the words charged to the ledger within
``max_epochs ×`` the prepared training words (a window holds fewer words than its share of the
split, because the tokens after the last whole window are never served).
"""

from __future__ import annotations

import math
from fractions import Fraction

from thrifty.config import TrainConfig
from thrifty.errors import UserError


def plan_steps(
    cfg: TrainConfig, num_windows: int, rows_per_step: int, seq_len: int, words_per_token: float
) -> int:
    """Optimizer steps until the first of max_steps / max_tokens / max_words / max_epochs,
    rounded down so that no cap is exceeded. ``rows_per_step`` is the global batch in windows
    (batch_size × grad_accum × processes)."""
    tokens_per_step = rows_per_step * seq_len
    # exact arithmetic: a float quotient such as 9.999999 or 10.000001 must not move a step
    candidates: dict[str, int] = {}
    if cfg.max_steps is not None:
        candidates["max_steps"] = cfg.max_steps
    if cfg.max_tokens is not None:
        candidates["max_tokens"] = cfg.max_tokens // tokens_per_step
    if cfg.max_words is not None:
        words_per_step = tokens_per_step * Fraction(words_per_token)  # as the ledger charges
        candidates["max_words"] = math.floor(cfg.max_words / words_per_step)
    if cfg.max_epochs is not None:
        # repr: the decimal the user wrote (0.3, not 0.29999...), so 0.3 x 10 windows is 3
        windows = math.floor(Fraction(repr(float(cfg.max_epochs))) * num_windows)
        candidates["max_epochs"] = windows // rows_per_step
    rule = min(candidates, key=candidates.__getitem__)
    steps = candidates[rule]
    if steps < 1:
        raise UserError(
            f"train.{rule}={getattr(cfg, rule)} allows no whole step of {rows_per_step} windows "
            f"({tokens_per_step:,} tokens, {num_windows:,} windows in the data); raise it or "
            "lower train.batch_size"
        )
    return steps


def word_marks() -> list[int]:
    """BabyLM checkpoint marks: every 1M words up to 10M, every 10M up to 100M, and every 100M
    up to 1B (the 2025 rule for the tracks beyond strict-small)."""
    millions = [*range(1, 10), *range(10, 100, 10), *range(100, 1001, 100)]
    return [m * 1_000_000 for m in millions]
