"""Coordinate descent on a x2 grid: finds the optimum of a convex bowl, never evaluates a cached
point twice, and resumes from its cache after being stopped."""

import math

import pytest

from thrifty.analysis.search import EvalCache, SearchSpace, canonical, coordinate_descent
from thrifty.errors import UserError

OPTIMUM = {"train.lr": 1e-3, "train.max_epochs": 16.0, "train.weight_decay": 0.8}
START = {"train.lr": 8e-3, "train.max_epochs": 2.0, "train.weight_decay": 0.1}


def bowl(point):
    """Convex in log2 of each value, minimum 1.0 at OPTIMUM (on the grid from START)."""
    return 1.0 + sum(math.log2(point[k] / OPTIMUM[k]) ** 2 for k in OPTIMUM)


class Counter:
    def __init__(self):
        self.seen = []

    def __call__(self, points):
        for p in points:
            assert canonical(p) not in {canonical(q) for q in self.seen}, "re-evaluated"
            self.seen.append(p)
        return [bowl(p) for p in points]


def test_finds_the_optimum_of_a_convex_bowl(tmp_path):
    evaluate = Counter()
    result = coordinate_descent(evaluate, SearchSpace(START), EvalCache(tmp_path / "c.jsonl"))
    assert result.converged
    assert result.best == pytest.approx(OPTIMUM)
    assert result.loss == pytest.approx(1.0)
    assert result.path[0][0] == pytest.approx(START) and result.path[-1][1] == result.loss
    # a finished search run again evaluates nothing and answers the same
    again = Counter()
    same = coordinate_descent(again, SearchSpace(START), EvalCache(tmp_path / "c.jsonl"))
    assert again.seen == [] and same.best == result.best and same.new_evaluations == 0


def test_resumes_after_being_stopped(tmp_path):
    full = Counter()
    coordinate_descent(full, SearchSpace(START), EvalCache(tmp_path / "full.jsonl"))

    cache_path = tmp_path / "stopped.jsonl"
    first = Counter()
    stopped = coordinate_descent(first, SearchSpace(START), EvalCache(cache_path), max_evals=5)
    assert not stopped.converged and len(first.seen) == 5
    second = Counter()
    done = coordinate_descent(second, SearchSpace(START), EvalCache(cache_path))
    assert done.converged and done.best == pytest.approx(OPTIMUM)
    seen = {canonical(p) for p in first.seen} | {canonical(p) for p in second.seen}
    assert len(seen) == len(first.seen) + len(second.seen)  # nothing evaluated twice
    assert seen == {canonical(p) for p in full.seen}  # same work as one uninterrupted search


def test_interrupted_evaluations_are_not_cached(tmp_path):
    cache = EvalCache(tmp_path / "c.jsonl")
    result = coordinate_descent(lambda pts: [None] * len(pts), SearchSpace(START), cache)
    assert not result.converged and len(cache) == 0


def test_bounds_and_failures():
    space = SearchSpace(START, bounds={"train.max_epochs": (1, 4)})
    result = coordinate_descent(Counter(), space)
    assert result.converged and result.best["train.max_epochs"] == 4.0
    # a failed (diverged) point counts as infinitely bad and is never chosen
    diverge = coordinate_descent(
        lambda pts: [math.inf if p["train.lr"] > 8e-3 else bowl(p) for p in pts], space
    )
    assert diverge.best["train.lr"] <= 8e-3
    with pytest.raises(UserError, match="positive"):
        SearchSpace({"train.lr": 0.0})
