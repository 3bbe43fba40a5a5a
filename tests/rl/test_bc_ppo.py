"""Behaviour cloning of planner demonstrations and PPO (Stable-Baselines3) from the cloned
policy: the card's invariant (50 expert trajectories solve DoorKey-5x5 well above chance before
any online step), exact weight transfer into PPO's actor, concurrent BC's joint gradient, and
the environment-step budget on the ledger."""

import json
import tempfile
from pathlib import Path

import pytest
import torch

pytest.importorskip("stable_baselines3")
pytest.importorskip("minigrid")

from thrifty.cli.main import main  # noqa: E402
from thrifty.data.budget import Ledger  # noqa: E402
from thrifty.data.demo_source import load_split  # noqa: E402
from thrifty.objectives.bc import bc_logits  # noqa: E402
from thrifty.rl.demos import DemoSettings, prepare_demos  # noqa: E402
from thrifty.rl.success import success_rate  # noqa: E402
from thrifty.runs import load_model  # noqa: E402

CONFIG = str(Path(__file__).parents[2] / "configs" / "bc-doorkey.yaml")
ENV = "MiniGrid-DoorKey-5x5-v0"


@pytest.fixture(scope="module")
def cloned(tmp_path_factory):
    """50 expert episodes and a bc run trained on them through the CLI."""
    root = tmp_path_factory.mktemp("bc")
    data, runs = root / "demos", root / "runs"
    prepare_demos(data, DemoSettings(episodes=50, valid_episodes=5), quiet=True)
    argv = ["train", CONFIG, f"data.path={data}", f"runs_dir={runs}", "name=bc"]
    assert main([*argv, "train.max_steps=250", "train.eval_every=250"]) == 0
    return data, runs / "bc"


def bc_policy(run):
    from safetensors.torch import load_file

    loaded = load_model(run)
    head = torch.nn.Linear(loaded.cfg.model.d_model, 7)
    head.load_state_dict(load_file(str(loaded.checkpoint / "objective.safetensors")))
    return loaded.model, head


def test_cloned_policy_solves_doorkey_before_any_online_step(cloned):
    model, head = bc_policy(cloned[1])
    cloned_score = success_rate(lambda obs: bc_logits(model, head, obs.long()), ENV, 32)
    uniform = success_rate(lambda obs: torch.zeros(len(obs), 7), ENV, 32)
    assert cloned_score["success_rate"] > 0.5  # the card's invariant
    assert uniform["success_rate"] < 0.3


def test_ppo_actor_starts_as_the_cloned_policy(cloned, tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from thrifty.rl.observations import make_env
    from thrifty.rl.policy import action_logits, load_cloned_policy, policy_kwargs

    data, run = cloned
    model, head = bc_policy(run)
    envs = make_vec_env(lambda: make_env(ENV), n_envs=1, seed=0)
    kwargs = policy_kwargs(load_model(run).cfg.model, seed=0)
    agent = PPO("MlpPolicy", envs, n_steps=16, batch_size=16, policy_kwargs=kwargs, device="cpu")
    load_cloned_policy(agent.policy, run)
    obs = load_split(data, "valid")["observations"]
    with torch.no_grad():
        expected = bc_logits(model, head, obs.long()).log_softmax(-1)
        got = action_logits(agent.policy, obs.float()).log_softmax(-1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_concurrent_bc_adds_the_weighted_bc_gradient():
    from thrifty.rl.concurrent_bc import WithBehaviourCloning

    class Policy(torch.nn.Module):  # stands in for SB3's policy: logits via get_distribution
        device = torch.device("cpu")

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 3)

        def get_distribution(self, obs):
            return type("D", (), {"distribution": torch.distributions.Categorical(
                logits=self.net(obs))})()  # fmt: skip

    policy = Policy()
    obs, actions = torch.randn(10, 4), torch.randint(0, 3, (10,))
    inner = torch.optim.SGD(policy.parameters(), lr=1.0)
    wrapped = WithBehaviourCloning(
        inner, policy, obs, actions, coef=0.5, batch_size=10, max_grad_norm=1e9, seed=0
    )
    before = [p.detach().clone() for p in policy.parameters()]
    ppo_grad = [torch.randn_like(p) for p in policy.parameters()]
    wrapped.zero_grad()
    for p, g in zip(policy.parameters(), ppo_grad):
        p.grad = g.clone()  # what PPO's backward left
    index = torch.randint(10, (10,), generator=torch.Generator().manual_seed(0))
    bc = torch.nn.functional.cross_entropy(policy.net(obs[index]), actions[index])
    bc_grad = torch.autograd.grad(0.5 * bc, list(policy.parameters()))
    wrapped.step()
    for b, p, g, h in zip(before, policy.parameters(), ppo_grad, bc_grad):
        torch.testing.assert_close(p.detach(), b - (g + h))  # one SGD step on the joint loss
    assert wrapped.transitions_read == 10


def test_ppo_runs_charge_environment_steps_and_offline_transitions(
    cloned, tmp_path, capsys, monkeypatch
):
    data, run = cloned
    scratch = tmp_path / "system-temp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where SB3's own logger writes
    common = [
        "--env",
        ENV,
        "--steps",
        "100",
        "--n-envs",
        "2",
        "--n-steps",
        "16",
        "--batch-size",
        "32",
    ]
    common += ["--eval-every", "64", "--eval-episodes", "4"]
    out = tmp_path / "concurrent"
    argv = ["ppo", *common, "--config", CONFIG, "--bc-data", str(data), "--out", str(out)]
    assert main(argv) == 0
    assert "concurrent-bc" in capsys.readouterr().out
    curve = [json.loads(r) for r in (out / "curve.jsonl").read_text().splitlines()]
    assert curve[0]["env_steps"] == 0 and curve[-1]["env_steps"] == 96  # 3 whole rollouts
    ledger = Ledger.load(out)
    assert ledger.env_steps == {"env": ENV, "budget": 100, "used": 96}
    assert ledger.words_seen > 0  # concurrent BC's minibatches of demonstrations
    assert main(["audit", str(out)]) == 0
    assert "environment steps" in capsys.readouterr().out
    assert not list(scratch.iterdir())  # no SB3-<time> folder left behind

    out = tmp_path / "init"
    assert main(["ppo", *common, "--init", str(run), "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["arm"] == "bc-init"
    assert result["first"]["success_rate"] > 0.5  # the actor starts as the cloned policy
    cloned_ledger = Ledger.load(run)
    assert Ledger.load(out).words_seen == cloned_ledger.words_seen  # its offline reading

    assert main(["ppo", *common, "--init", str(run), "--out", str(out)]) == 2  # finished run
    assert main(["ppo", "--steps", "10", "--config", CONFIG, "--out", str(tmp_path / "x")]) == 2
    assert "below one rollout" in capsys.readouterr().err


def test_an_overspent_online_budget_fails_the_audit(tmp_path, capsys):
    ledger = Ledger(unit="transitions", env_steps={"env": ENV, "budget": 10, "used": 12})
    ledger.save(tmp_path)
    assert main(["audit", str(tmp_path)]) == 1
    assert "12 environment steps exceed the budget of 10" in capsys.readouterr().out


def test_bc_needs_the_grid_stem(tmp_path):
    from thrifty.config import ModelConfig
    from thrifty.errors import UserError
    from thrifty.models.transformer import Transformer
    from thrifty.objectives import OBJECTIVES

    model = Transformer(ModelConfig(size="nano", vocab_size=32))
    with pytest.raises(UserError, match="model.stem=grid"):
        OBJECTIVES.build({"name": "bc"}, model)
