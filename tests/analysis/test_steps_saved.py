"""Environment steps saved: interpolated crossings, censored baselines, and methods that need
no online step at all."""

import pytest

from thrifty.analysis.steps_saved import steps_saved, steps_to_reach


def curve(*successes, every=1000):
    return [{"env_steps": i * every, "success_rate": s} for i, s in enumerate(successes)]


def test_steps_to_reach_interpolates_the_first_crossing():
    assert steps_to_reach(curve(0.0, 0.4, 0.8, 0.2), 0.6) == (1500.0, True)
    assert steps_to_reach(curve(0.9, 0.1), 0.8) == (0.0, True)
    assert steps_to_reach(curve(0.1, 0.2), 0.8) == (1000.0, False)  # censored at the end


def test_factor_bounds_and_at_once():
    scratch = [curve(0, 0.2, 0.5, 0.8), curve(0, 0.1, 0.5, 0.9)]
    method = [curve(0, 0.8), curve(0, 0.9)]
    s = steps_saved(scratch, method, 0.8)
    assert s["factor"] == pytest.approx((3000 + 2750) / (1000 + 8000 / 9))  # mean over mean
    assert not s["lower_bound"] and s["determined"] and not s["at_once"]
    assert s["ci95"][0] <= s["factor"] <= s["ci95"][1]
    never = steps_saved([curve(0, 0.1), curve(0, 0.2)], method, 0.8)
    assert never["lower_bound"]  # scratch never got there: the factor is a lower bound
    at_once = steps_saved(scratch, [curve(0.9, 0.9)], 0.8)
    assert at_once["at_once"] and at_once["factor"] is None
