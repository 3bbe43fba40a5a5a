"""The joint architecture–recipe space of FBNetV3's search (Dai et al. 2021, NARS;
``papers/fbnetv3.md``): candidates, their fixed-length encoding, quasi-random sampling, and
the evolutionary moves.

A space names dotted config keys, each either a list of choices (``model.n_layers: [1, 2,
4]``, ``model.linear.name: [dense, lowrank]``) or a log-uniform range (``train.lr:
{log_uniform: [1e-4, 1e-2]}``). A candidate is a dict of those keys. Its encoding is a one-hot
block per choice axis and log(value) scaled to [0, 1] per range axis, so the predictor sees
every candidate as one vector of the same length. Sampling uses a scrambled Sobol sequence
(torch's), as the paper does, so a few samples already cover the space evenly; candidates the
config rejects (e.g. a width that does not split into the heads) are skipped by the caller's
``valid`` check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from thrifty.errors import UserError

Candidate = dict[str, Any]


@dataclass(frozen=True)
class Axis:
    key: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None

    @property
    def width(self) -> int:
        return len(self.choices) if self.choices is not None else 1

    def value(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1)."""
        if self.choices is not None:
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        log = math.log(self.low) + u * (math.log(self.high) - math.log(self.low))
        return float(f"{math.exp(log):.4g}")

    def encode(self, value: Any) -> list[float]:
        if self.choices is not None:
            return [1.0 if value == c else 0.0 for c in self.choices]
        span = math.log(self.high) - math.log(self.low)
        return [(math.log(value) - math.log(self.low)) / span if span else 0.0]


def parse_space(raw: Any, where: str = "nars: space") -> list[Axis]:
    """Axes of a ``space:`` mapping; a UserError naming the first key it cannot take."""
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{where}: a mapping of dotted keys to choices or {{log_uniform: [a, b]}}")
    axes = []
    for key, spec in raw.items():
        if isinstance(spec, list) and len(spec) >= 2:
            axes.append(Axis(key, choices=tuple(spec)))
        elif isinstance(spec, dict) and set(spec) == {"log_uniform"}:
            low, high = map(float, spec["log_uniform"])
            if not 0 < low <= high:
                raise UserError(f"{where}: {key}: log_uniform needs 0 < low <= high")
            axes.append(Axis(key, low=low, high=high))
        else:
            raise UserError(
                f"{where}: {key}: give at least two choices or {{log_uniform: [low, high]}}"
            )
    return axes


def encode(axes: list[Axis], candidate: Candidate) -> list[float]:
    return [x for axis in axes for x in axis.encode(candidate[axis.key])]


def sobol_candidates(
    axes: list[Axis], n: int, seed: int, valid: Callable[[Candidate], bool]
) -> list[Candidate]:
    """``n`` distinct valid candidates from a scrambled Sobol sequence of the space."""
    engine = torch.quasirandom.SobolEngine(len(axes), scramble=True, seed=seed)
    found: dict[str, Candidate] = {}
    for _ in range(50):  # rounds of draws; invalid or repeated candidates are skipped
        for row in engine.draw(max(n, 16)).tolist():
            candidate = {a.key: a.value(u) for a, u in zip(axes, row, strict=True)}
            key = repr(sorted(candidate.items()))
            if key not in found and valid(candidate):
                found[key] = candidate
            if len(found) == n:
                return list(found.values())
    raise UserError(f"nars: the space holds fewer than {n} valid candidates")


def mutate(axes: list[Axis], candidate: Candidate, rng: np.random.Generator) -> Candidate:
    """``candidate`` with one axis redrawn (a neighbouring choice, or a nearby log value)."""
    axis = axes[rng.integers(len(axes))]
    out = dict(candidate)
    if axis.choices is not None:
        index = axis.choices.index(candidate[axis.key]) + rng.choice([-1, 1])
        out[axis.key] = axis.choices[int(np.clip(index, 0, len(axis.choices) - 1))]
    else:
        u = axis.encode(candidate[axis.key])[0] + rng.normal(0.0, 0.15)
        out[axis.key] = axis.value(float(np.clip(u, 0.0, 0.999)))
    return out


def crossover(axes: list[Axis], a: Candidate, b: Candidate, rng: np.random.Generator) -> Candidate:
    """Each axis from ``a`` or ``b`` with equal chance."""
    return {axis.key: (a if rng.uniform() < 0.5 else b)[axis.key] for axis in axes}
