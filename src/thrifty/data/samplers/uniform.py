"""``uniform``: every window once per epoch, in a fresh seeded order each epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from thrifty.data.samplers.base import SAMPLERS, Sampler


@SAMPLERS.register("uniform")
class Uniform(Sampler):
    @dataclass(kw_only=True)
    class Config:
        shuffle: bool = True
        """Shuffle windows each epoch (off: in corpus order)."""

    def _order(self, epoch: int) -> np.ndarray:
        if not self.cfg.shuffle:
            return np.arange(self.num_windows)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)

    def next_indices(self, n: int) -> tuple[np.ndarray, torch.Tensor | None]:
        # Derived from `served` alone, so the state is one integer and resume is exact.
        out = []
        while len(out) < n:
            epoch, pos = divmod(self.served, self.num_windows)
            take = min(n - len(out), self.num_windows - pos)
            out.extend(self._order(epoch)[pos : pos + take])
            self.served += take
        return np.asarray(out, dtype=np.int64), None
