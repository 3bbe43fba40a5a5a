"""Samplers decide which training windows the loop sees, in which order, with which weights.

They are plain objects with ``state_dict()``/``load_state_dict()`` so resume is exact, and one
hook, ``observe(indices, losses)``, for loss-aware strategies. Under data parallelism every rank
draws the same global batch and keeps its own slice, so the order does not depend on world size;
``observe`` receives the whole global batch's losses on every rank, so a loss-aware sampler's
state stays the same on all of them. The loop charges the ledger for every window served.

Loss-based *reweighting* is not a sampler: its weights depend on the same batch's losses, which
a sampler only hears about after the backward pass; see ``thrifty.objectives.reweighting``.
"""

from __future__ import annotations

import numpy as np
import torch

from thrifty.errors import UserError
from thrifty.registry import Registry

SAMPLERS = Registry("sampler")


class Sampler:
    def __init__(self, cfg, num_windows: int, *, seed: int = 0) -> None:
        if num_windows < 1:
            raise ValueError("a sampler needs at least one window")
        self.cfg = cfg
        self.num_windows = num_windows
        self.seed = seed
        self.served = 0
        """Windows handed out so far (global, all ranks)."""

    @property
    def epochs(self) -> float:
        return self.served / self.num_windows

    def next_indices(self, n: int) -> tuple[np.ndarray, torch.Tensor | None]:
        """The next ``n`` window indices and their weights (None: equal)."""
        raise NotImplementedError

    def observe(self, indices: np.ndarray, losses: torch.Tensor) -> None:
        """Per-window losses of the last batch (for loss-aware samplers); default: ignore."""

    def state_dict(self) -> dict:
        """Everything the order depends on beyond the config: resume continues bit for bit."""
        return {"served": self.served, "num_windows": self.num_windows, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        for key in ("num_windows", "seed"):  # absent in checkpoints of older versions
            if key in state and state[key] != getattr(self, key):
                raise UserError(
                    f"the checkpoint's sampler had {key}={state[key]}, this run has "
                    f"{getattr(self, key)}: the data or train.seed changed since it was written"
                )
        self.served = int(state["served"])
