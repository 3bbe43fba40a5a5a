"""Dark Room for DPT: labels against breadth-first search, seeded generation, held-out goals,
the data-source seam, the empty-context prior, and prepare -> train -> audit -> eval by CLI."""

import json
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from thrifty.cli.main import main
from thrifty.config import ModelConfig
from thrifty.data.bandits import BanditSettings, prepare_bandits
from thrifty.data.darkroom import (
    ACTIONS,
    DarkRoomSettings,
    darkroom_features,
    distances,
    goal_pools,
    optimal_actions,
    prepare_darkroom,
    step,
)
from thrifty.data.source import open_source
from thrifty.data.task_folder import load_split
from thrifty.errors import UserError
from thrifty.eval.darkroom_deploy import evaluate, load_policy
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.dpt import action_logits

CONFIG = str(Path(__file__).parents[2] / "configs" / "dpt-darkroom.yaml")
SETTINGS = DarkRoomSettings(
    grid=4, horizon=6, episodes=2, holdout_goals=3, features="onehot-coords", seed=5
)


def bfs(goal: int, grid: int) -> np.ndarray:
    """Steps from every cell to ``goal`` through the room's own moves (moves are reversible)."""
    dist = np.full(grid * grid, -1)
    dist[goal], queue = 0, deque([goal])
    while queue:
        here = queue.popleft()
        for a in range(len(ACTIONS)):
            there = int(step(np.array(here), np.array(a), grid))
            if dist[there] < 0:
                dist[there] = dist[here] + 1
                queue.append(there)
    return dist


@pytest.mark.parametrize("grid", [2, 4, 5])
def test_optimal_action_is_a_shortest_path_step_with_lowest_index_ties(grid):
    cells = np.arange(grid * grid)
    for goal in cells:
        dist = bfs(goal, grid)
        label = optimal_actions(cells, np.full_like(cells, goal), grid)
        assert (distances(cells, np.full_like(cells, goal), grid) == dist).all()
        for s in cells:
            best = [
                a
                for a in range(4)
                if dist[int(step(np.array(s), np.array(a), grid))] == dist[s] - 1
            ]
            assert label[s] == (min(best) if s != goal else ACTIONS.index("stay"))


def test_generation_follows_the_seed_and_holds_goals_out(tmp_path):
    manifest = prepare_darkroom(tmp_path / "d", SETTINGS, tasks=300, valid_tasks=40)
    assert manifest["modality"] == "darkroom" and manifest["context_len"] == 12
    held = set(manifest["valid_goals"])
    assert len(held) == 3 and held == set(goal_pools(SETTINGS)["valid"].tolist())
    train, valid = load_split(tmp_path / "d", "train"), load_split(tmp_path / "d", "valid")
    assert not held & set(train["goals"].tolist()) and set(valid["goals"].tolist()) <= held
    for split in (train, valid):  # the stored transitions are the room's own
        s, a, s2 = split["states"].long(), split["actions"].long(), split["next_states"].long()
        assert (torch.from_numpy(step(s.numpy(), a.numpy(), 4)) == s2).all()
        assert (split["rewards"] == (s2 == split["goals"][:, None]).float()).all()
        assert (s[:, [0, 6]] == 0).all()  # every episode starts in the corner
        assert (s[:, 1:6] == s2[:, :5]).all()
        best = optimal_actions(split["query"].numpy(), split["goals"].numpy(), 4)
        assert (split["optimal"].numpy() == best).all()

    source = open_source(tmp_path / "d", "train")
    assert source.unit == "transitions" and source.num_items(0) == 300
    assert source.units_per_token == pytest.approx(12 / 13)
    fields = source.batch([0, 9], 13)
    width = 5 + 2 + 2 * (16 + 2)
    assert fields["context"].shape == (2, 13, width) and fields["actions"].dtype == torch.long
    query = fields["context"][:, 0]
    assert (query[:, -1] == 1).all() and (query[:, :6] == 0).all() and (query[:, 24:-1] == 0).all()
    cell = train["query"][[0, 9]].long()
    assert (query[:, 6:22].argmax(-1) == cell).all()  # the query token holds s_q
    model = source.fit(ModelConfig(size="nano", max_seq_len=16, stem={"name": "transitions"}))
    assert model.stem == {"name": "transitions", "arms": 5, "state_dim": 18}
    assert main(["audit", str(tmp_path / "d")]) == 0

    again = prepare_darkroom(tmp_path / "e", SETTINGS, tasks=300, valid_tasks=40)
    sha = manifest["ledger"]["sources"][0]["sha256"]
    assert again["ledger"]["sources"][0]["sha256"] == sha
    other = prepare_darkroom(tmp_path / "f", replace(SETTINGS, seed=6), tasks=300, valid_tasks=40)
    assert other["ledger"]["sources"][0]["sha256"] != sha


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--grid", "1"], "--grid=1"),
        (["--grid", "3", "--holdout-goals", "9"], "--holdout-goals=9"),
        (["--episodes", "0"], "--episodes=0"),
        (["--start", "middle"], "--start="),
        (["--features", "pixels"], "--features="),
        (["--tasks", "0"], "--tasks=0"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_option(tmp_path, capsys, argv, option):
    assert main(["darkroom-task", "--out", str(tmp_path / "d"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and option in err and "\n" not in err
    assert not (tmp_path / "d").exists()


def test_a_model_the_data_cannot_feed_is_a_user_error(tmp_path):
    prepare_darkroom(tmp_path / "d", SETTINGS, tasks=4, valid_tasks=1)
    source = open_source(tmp_path / "d", "train")
    with pytest.raises(UserError, match="model.stem=transitions"):
        source.fit(ModelConfig(size="nano"))
    stem = {"name": "transitions", "state_dim": 7}
    with pytest.raises(UserError, match="model.stem.state_dim=7"):
        source.fit(ModelConfig(size="nano", stem=stem))
    with pytest.raises(UserError, match="model.max_seq_len=8"):
        source.fit(ModelConfig(size="nano", max_seq_len=8, stem={"name": "transitions"}))
    prepare_bandits(tmp_path / "b", BanditSettings(arms=3, horizon=4), tasks=4)
    with pytest.raises(UserError, match="model.stem.state_dim=18"):  # a room's stem, bandit data
        open_source(tmp_path / "b", "train").fit(
            ModelConfig(size="nano", stem=stem | {"state_dim": 18})
        )


def test_the_empty_context_predicts_the_goal_prior_at_the_query():
    """The card's invariant, for a room: with no transitions the prediction is the prior of
    a* given s_q. From the centre of a 3×3 room with every goal equally likely that is up and
    down 3/9 each, left, right and stay 1/9 (rows first), symmetric under the room's mirrors."""
    settings = DarkRoomSettings(grid=3, horizon=4, episodes=1)
    torch.manual_seed(0)
    stem = {"name": "transitions", "arms": 5, "state_dim": 2}
    cfg = ModelConfig(size="nano", d_model=32, max_seq_len=8, stem=stem)
    objective = OBJECTIVES.build({"name": "dpt"}, Transformer(cfg))
    params = [*objective.model.parameters(), *objective.owned.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-2)
    empty = torch.zeros(1, 0)
    goals, query = np.divmod(np.arange(81), 9)  # every (goal, query) pair: the exact prior
    z = torch.zeros(81, 0)
    for micro in range(100):
        context = darkroom_features(torch.from_numpy(query), z, z, z, z, settings.grid)
        labels = torch.from_numpy(optimal_actions(query, goals, 3))
        out = objective(Batch.of({"context": context, "actions": labels}, micro=micro))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    tokens = darkroom_features(torch.tensor([4]), empty, empty, empty, empty, 3)
    with torch.no_grad():
        probs = torch.softmax(action_logits(objective.model, objective.owned, tokens)[0, 0], -1)
    prior = torch.tensor([3, 3, 1, 1, 1]) / 9
    assert (probs - prior).abs().max() < 0.03, probs


def test_baselines_order_and_bad_eval_settings():
    result = evaluate(None, DarkRoomSettings(grid=4, horizon=12, episodes=3), seeds=2, tasks=40)
    online = {name: s["mean"] for name, s in result["online"].items()}
    assert set(online) == {"random", "empirical", "oracle"} and len(online["oracle"]) == 3
    assert online["random"][-1] < online["empirical"][-1] <= online["oracle"][-1]
    assert online["empirical"][0] < online["empirical"][-1]  # it finds the goal, then stays
    with pytest.raises(UserError, match="--seeds=0"):
        evaluate(None, DarkRoomSettings(grid=4, horizon=12), seeds=0)


def test_prepare_train_audit_and_deploy(tmp_path, capsys):
    data, runs = tmp_path / "room", tmp_path / "runs"
    argv = ["darkroom-task", "--out", str(data), "--grid", "3", "--episodes", "2", "--tasks"]
    assert main([*argv, "200", "--holdout-goals", "2", "--seed", "1", "--quiet"]) == 0
    argv = [
        "train",
        CONFIG,
        f"data.path={data}",
        f"runs_dir={runs}",
        "name=dpt",
        "model.d_model=32",
        "model.n_layers=1",
        "model.max_seq_len=32",
        "train.max_steps=20",
        "train.batch_size=20",
        "train.warmup_steps=2",
        "train.eval_every=10",
        "train.log_every=10",
    ]
    assert main(argv) == 0
    run = runs / "dpt"
    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger["unit"] == "transitions" and ledger["words_seen"] == 20 * 20 * 18
    capsys.readouterr()
    assert main(["audit", str(run)]) == 0
    policy = load_policy(run)
    assert policy.settings.grid == 3 and policy.settings.holdout_goals == 2

    out = tmp_path / "darkroom.json"
    argv = ["darkroom-eval", str(run), "--seeds", "2", "--tasks", "10", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["online"]) == {"dpt", "random", "empirical", "oracle"}
    assert len(result["online"]["dpt"]["mean"]) == 2 and result["goals"] == "held-out"
    assert set(result["offline"]) == set(result["online"]) and "dpt" in result["offline_accuracy"]
    assert "| dpt |" in capsys.readouterr().out
