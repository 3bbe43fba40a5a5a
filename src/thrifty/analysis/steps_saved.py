""" "Environment steps saved": by what factor pretraining cuts the online steps an agent needs to
reach a target success rate — the decision-making twin of the effective data multiplier.

From each run's curve (success rate at evaluated environment steps), the steps to reach the
target are read off by linear interpolation between the evaluations around the first crossing
(0 when the policy already meets it before any step). A run that never reaches it is censored
at its budget: the factor against it is then a lower bound, and says so (and a method run that
never reaches it leaves the factor undetermined). The factor is the
ratio of the arms' mean steps; its interval is a percentile bootstrap over the seeds of each
arm, resampled independently. A method whose every run meets the target before its first
online step has no factor (``at_once``): pretraining alone did the job.
"""

from __future__ import annotations

import numpy as np


def steps_to_reach(curve: list[dict], target: float) -> tuple[float, bool]:
    """(steps, reached) for one run's curve rows ``{"env_steps", "success_rate"}``; a run that
    never reaches ``target`` gives (its last evaluated step, False)."""
    rows = sorted(curve, key=lambda r: r["env_steps"])
    previous = None
    for row in rows:
        if row["success_rate"] >= target:
            if previous is None:
                return float(row["env_steps"]), True
            (s0, v0), (s1, v1) = previous, (row["env_steps"], row["success_rate"])
            return float(s0 + (target - v0) / (v1 - v0) * (s1 - s0)), True
        previous = (row["env_steps"], row["success_rate"])
    return float(rows[-1]["env_steps"]), False


def steps_saved(
    baseline: list[list[dict]],
    method: list[list[dict]],
    target: float,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """The factor mean steps(baseline) / mean steps(method) to reach ``target``, with a 95%
    bootstrap interval over seeds; ``lower_bound`` when some baseline run never got there."""
    base = [steps_to_reach(c, target) for c in baseline]
    meth = [steps_to_reach(c, target) for c in method]
    b = np.array([s for s, _ in base])
    m = np.array([s for s, _ in meth])
    factor, ci95 = None, None  # the method met the target before any online step: no ratio
    if m.max() > 0:
        rng = np.random.default_rng(seed)
        draws = [
            rng.choice(b, len(b)).mean() / max(rng.choice(m, len(m)).mean(), 1.0)
            for _ in range(resamples)
        ]
        factor, ci95 = float(b.mean() / m.mean()), np.percentile(draws, [2.5, 97.5]).tolist()
    return {
        "target": target,
        "factor": factor,
        "ci95": ci95,
        "at_once": bool(m.max() == 0),
        "lower_bound": not all(r for _, r in base),
        "determined": all(r for _, r in meth),  # False: the method's own steps are censored
        "method_reached": sum(r for _, r in meth),
        "baseline_reached": sum(r for _, r in base),
        "baseline_steps": b.tolist(),
        "method_steps": m.tolist(),
    }
