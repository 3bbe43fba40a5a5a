"""Regularized recipe search: coordinate descent on a ×2 grid until locally optimal.

Kim et al. 2025 (papers/infinite_compute.md §2.2) tune learning rate, epochs and weight decay
jointly for each model size, moving one hyper-parameter one grid step (×2 or ÷2) at a time,
until no single step lowers the validation loss: a "locally optimal" point. Here every round
evaluates all single-step neighbours of the current point together (so they can train in
parallel) and moves to the best one if it improves; the stopping rule is the same.

Every evaluation is appended to a JSON-lines cache keyed by the overrides, so a search that is
stopped (or crashes) resumes without re-running anything, and a finished search re-run
returns at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from thrifty.errors import UserError
from thrifty.jsonl import read_jsonl

Point = dict[str, float]


def canonical(point: Point) -> str:
    """The cache key of a point: sorted keys, values to 12 significant digits (so 3e-3 * 2 / 2
    and 3e-3 are the same point)."""
    return json.dumps({k: float(f"{float(v):.12g}") for k, v in sorted(point.items())})


class EvalCache:
    """Losses of evaluated points, kept in memory and appended to a .jsonl file (if given)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.losses: dict[str, float] = {}
        if self.path is not None:
            # A line torn by a crash mid-write is cut off: that point is simply evaluated again.
            for n, row in enumerate(read_jsonl(self.path, repair=True), 1):
                try:
                    self.losses[canonical(row["point"])] = float(row["loss"])
                except (KeyError, TypeError, ValueError, AttributeError):
                    raise UserError(f"{self.path}: row {n} lacks a point or a loss") from None

    def get(self, point: Point) -> float | None:
        return self.losses.get(canonical(point))

    def put(self, point: Point, loss: float, **extra) -> None:
        self.losses[canonical(point)] = float(loss)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            row = {"point": json.loads(canonical(point)), "loss": float(loss), **extra}
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def __len__(self) -> int:
        return len(self.losses)


@dataclass
class SearchSpace:
    start: Point
    """Starting value of each searched key (a dotted config key)."""
    factor: float = 2.0
    """Grid step: each move multiplies or divides one value by it."""
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Optional [low, high] per key; points outside are never proposed."""

    def __post_init__(self) -> None:
        if not self.start:
            raise UserError("search: start must name at least one key, e.g. train.lr")
        if self.factor <= 1:
            raise UserError(f"search: factor must be > 1, got {self.factor}")
        for key, value in self.start.items():
            if not isinstance(value, int | float) or value <= 0:
                raise UserError(f"search: start value of {key} must be a positive number")
        for key, (lo, hi) in self.bounds.items():
            if key not in self.start:
                raise UserError(f"search: bounds name {key!r}, which is not in start")
            if not lo <= self.start[key] <= hi:
                raise UserError(f"search: start value of {key} lies outside its bounds")

    def point(self, steps: dict[str, int]) -> Point:
        return {k: float(f"{v * self.factor ** steps[k]:.12g}") for k, v in self.start.items()}

    def neighbours(self, steps: dict[str, int]) -> list[dict[str, int]]:
        """Single-step moves (key order; up before down) that stay within the bounds."""
        found = []
        for key in self.start:
            for delta in (1, -1):
                moved = {**steps, key: steps[key] + delta}
                lo, hi = self.bounds.get(key, (0.0, math.inf))
                if lo * (1 - 1e-9) <= self.point(moved)[key] <= hi * (1 + 1e-9):
                    found.append(moved)
        return found


@dataclass
class SearchResult:
    best: Point
    loss: float
    converged: bool
    """True when no single step improves ``best`` (locally optimal); False when stopped early."""
    new_evaluations: int
    path: list[tuple[Point, float]]
    """The points moved through, with their losses."""


Evaluate = Callable[[list[Point]], list[float | None]]
"""Losses of several points (run in parallel if the caller can); None = not evaluated (for
example interrupted), which stops the search without caching anything for that point."""


def coordinate_descent(
    evaluate: Evaluate,
    space: SearchSpace,
    cache: EvalCache | None = None,
    *,
    max_evals: int | None = None,
) -> SearchResult:
    """Move to the best improving single-step neighbour until none improves.

    ``max_evals`` caps the distinct points in the cache (earlier runs included); the search
    then stops with ``converged=False`` and can be resumed with a larger cap.
    """
    cache = cache if cache is not None else EvalCache()
    new = 0

    def losses(candidates: list[dict[str, int]]) -> list[float | None]:
        nonlocal new
        points = [space.point(s) for s in candidates]
        todo = [p for p in points if cache.get(p) is None]
        todo = list({canonical(p): p for p in todo}.values())
        if max_evals is not None:
            todo = todo[: max(0, max_evals - len(cache))]
        if todo:
            results = evaluate(todo)
            if len(results) != len(todo):
                raise ValueError(f"evaluate returned {len(results)} losses for {len(todo)} points")
            for p, loss in zip(todo, results):
                if loss is not None:
                    cache.put(p, loss if math.isfinite(loss) else math.inf)
                    new += 1
        return [cache.get(p) for p in points]

    steps = {k: 0 for k in space.start}
    (loss,) = losses([steps])
    if loss is None:
        return SearchResult(space.point(steps), math.nan, False, new, [])
    path = [(space.point(steps), loss)]
    while True:
        candidates = space.neighbours(steps)
        results = losses(candidates)
        known = [(r, i) for i, r in enumerate(results) if r is not None]
        if known:
            best_loss, i = min(known)  # ties: the earlier neighbour (deterministic)
            if best_loss < loss:
                steps, loss = candidates[i], best_loss
                path.append((space.point(steps), loss))
                continue
        complete = len(known) == len(candidates)
        return SearchResult(space.point(steps), loss, complete, new, path)
