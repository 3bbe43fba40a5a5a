"""Random numbers keyed by the global sample, so training does not depend on the world size.

Masks, replacement tokens and generator samples are drawn per row from a stream seeded by
(objective seed, purpose, micro-batch index, row's position in the *global* micro-batch). A row
therefore gets the same corruption whether it is trained on one process or on rank 3 of 8, and
whether the run was resumed or not; no generator state has to be checkpointed. Each purpose
("mask", "sample", ...) has its own stream, so adding a draw in one place never shifts another.

Written by hand because the keying is thrifty's own contract; PyTorch's generators do the drawing.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch

_MASK64 = (1 << 64) - 1


def _splitmix(x: int) -> int:
    """One round of splitmix64: a cheap, well-mixed 64-bit hash step."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def stream_seed(*parts: int) -> int:
    """A 63-bit seed from integers (negative ones allowed), different for every tuple."""
    h = 0
    for part in parts:
        h = _splitmix(h ^ (part & _MASK64))
    return h >> 1


class RowRandom:
    """One random stream per row of a batch; every draw returns (B, ...) with row i from stream i.

    ``rows`` are the rows' positions in the global micro-batch ``micro``. Successive draws
    continue each row's stream, so the order of draws inside an objective is part of its
    definition (as it is with a single generator).
    """

    def __init__(self, seed: int, purpose: str, micro: int, rows: Sequence[int]) -> None:
        tag = zlib.crc32(purpose.encode())
        self.generators = [
            torch.Generator().manual_seed(stream_seed(seed, tag, micro, int(r))) for r in rows
        ]

    def __len__(self) -> int:
        return len(self.generators)

    def rand(self, *shape: int) -> torch.Tensor:
        """(B, *shape) uniforms in [0, 1)."""
        if not self.generators:
            return torch.empty(0, *shape)
        return torch.stack([torch.rand(shape, generator=g) for g in self.generators])

    def randint(self, low: int, high: int, *shape: int) -> torch.Tensor:
        """(B, *shape) integers in [low, high)."""
        if not self.generators:
            return torch.empty(0, *shape, dtype=torch.long)
        return torch.stack([torch.randint(low, high, shape, generator=g) for g in self.generators])

    def select(self, keep: torch.Tensor) -> RowRandom:
        """The streams of the rows where the (B,) bool ``keep`` is true (same streams, shared)."""
        picked = RowRandom.__new__(RowRandom)
        picked.generators = [g for g, k in zip(self.generators, keep.tolist(), strict=True) if k]
        return picked


def sample_uniforms(seed: int, purpose: str, samples: Sequence[int]) -> torch.Tensor:
    """One uniform in [0, 1) per global sample index, from a hash of (seed, purpose, sample):
    the same for a sample whatever the batch size, world size or resume point."""
    tag = zlib.crc32(purpose.encode())
    return torch.tensor([stream_seed(seed, tag, s) / 2.0**63 for s in samples], dtype=torch.float64)
