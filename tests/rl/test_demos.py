"""MiniGrid demonstrations: the planner solves levels, recording is deterministic from the seed,
levels of the splits and of evaluation never meet, noise and level caps do what they say."""

import json

import numpy as np
import pytest

pytest.importorskip("minigrid")

from thrifty.cli.main import main  # noqa: E402
from thrifty.data.demo_source import DemoSource  # noqa: E402
from thrifty.rl.demos import EVAL_LEVEL_BASE, DemoSettings, level_seeds, prepare_demos  # noqa: E402
from thrifty.rl.observations import OBS_WIDTH, make_env  # noqa: E402
from thrifty.rl.planner import shortest_plan  # noqa: E402


@pytest.mark.parametrize("env_id", ["MiniGrid-DoorKey-5x5-v0", "MiniGrid-KeyCorridorS3R1-v0"])
def test_the_planner_solves_levels(env_id):
    env = make_env(env_id)
    for level in range(3):
        env.reset(seed=level)
        plan = shortest_plan(env.unwrapped)
        assert plan is not None
        for action in plan:
            _, reward, terminated, truncated, _ = env.step(action)
        assert terminated and reward > 0  # KeyCorridor needs drop: every useful action searched


def test_the_plan_is_shortest():
    env = make_env("MiniGrid-DoorKey-5x5-v0")
    env.reset(seed=4)
    plan = shortest_plan(env.unwrapped)
    rng = np.random.default_rng(0)
    for _ in range(200):  # no random walk of the same length or less solves it faster
        env.reset(seed=4)
        for step, action in enumerate(rng.integers(0, 6, len(plan) - 1)):
            _, reward, terminated, _, _ = env.step(int(action))
            assert not (terminated and reward > 0 and step < len(plan) - 1)
            if terminated:
                break


def test_recording_is_deterministic_and_levels_stay_apart(tmp_path):
    settings = DemoSettings(episodes=4, valid_episodes=2, seed=3)
    a = prepare_demos(tmp_path / "a", settings, quiet=True)
    b = prepare_demos(tmp_path / "b", settings, quiet=True)
    assert a["ledger"]["sources"][0]["sha256"] == b["ledger"]["sources"][0]["sha256"]
    seeds = level_seeds(settings)
    assert not set(seeds["train"]) & set(seeds["valid"])
    assert max(seeds["train"] + seeds["valid"]) < EVAL_LEVEL_BASE
    assert a["quality"]["train"] == {**a["quality"]["train"], "success_rate": 1.0}
    assert a["quality"]["train"]["optimality"] == 1.0
    ledger = a["ledger"]
    assert ledger["unit"] == "transitions"
    assert ledger["prepared_words"]["train"] == a["counts"]["train"]
    source = DemoSource(tmp_path / "a", "train")
    batch = source.batch([0, 1], 0)
    assert batch["observations"].shape == (2, OBS_WIDTH)
    assert batch["actions"].shape == (2,)


# slow tier: ~20 s of noisy replanning; the clean recording path is tested above
@pytest.mark.slow
def test_noise_lowers_optimality_and_levels_cap_diversity(tmp_path):
    noisy = prepare_demos(
        tmp_path / "noisy", DemoSettings(episodes=6, noise=0.5, levels=2, seed=1), quiet=True
    )
    quality = noisy["quality"]["train"]
    assert quality["optimality"] < 1.0
    assert quality["distinct_levels"] == 2


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    assert main(["demos", "--out", str(tmp_path / "d"), "--noise", "1.5"]) == 2
    assert "--noise=1.5" in capsys.readouterr().err
    assert main(["demos", "--out", str(tmp_path / "d"), "--env", "MiniGrid-Nope-v0"]) == 2
    assert "MiniGrid-Nope-v0" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_cli_records_and_audits(tmp_path, capsys):
    out = tmp_path / "demos"
    argv = ["demos", "--out", str(out), "--episodes", "2", "--valid-episodes", "1"]
    assert main(argv) == 0
    assert "2 episodes on 2 levels" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["modality"] == "demos"
    assert main(["audit", str(out)]) == 0
    assert main(argv) == 2  # already there
