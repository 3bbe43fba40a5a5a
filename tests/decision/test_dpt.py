"""The dpt objective and the transitions stem: causal prefixes, a loss at every context size,
the empty context's uniform prediction, and the baselines it is compared with."""

import pytest
import torch

from thrifty.config import ModelConfig
from thrifty.data.bandits import BanditSettings, transition_features
from thrifty.errors import UserError
from thrifty.eval import bandit_baselines as base
from thrifty.eval.bandit_deploy import evaluate
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.dpt import action_logits

ARMS, N = 5, 12


def policy(every_prefix: bool = True):
    torch.manual_seed(0)
    cfg = ModelConfig(
        size="nano", d_model=32, max_seq_len=32, stem={"name": "transitions", "arms": ARMS}
    )
    return OBJECTIVES.build({"name": "dpt", "every_prefix": every_prefix}, Transformer(cfg))


def histories(B: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, ARMS, (B, N), generator=g), torch.rand(B, N, generator=g)


def test_prediction_at_prefix_j_ignores_later_transitions():
    objective = policy()
    actions, rewards = histories()
    before = action_logits(
        objective.model, objective.owned, transition_features(actions, rewards, ARMS)
    )
    rewards2 = rewards.clone()
    rewards2[:, 6:] += 5.0
    after = action_logits(
        objective.model, objective.owned, transition_features(actions, rewards2, ARMS)
    )
    torch.testing.assert_close(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_learns_the_best_arm_and_keeps_the_empty_context_near_uniform():
    objective = policy()
    assert objective.kind == "policy"
    empty = transition_features(torch.zeros(256, 0, dtype=torch.long), torch.zeros(256, 0), ARMS)
    start = torch.softmax(action_logits(objective.model, objective.owned, empty)[0, 0], -1)
    assert (start - 1 / ARMS).abs().max() < 0.1  # at init
    params = [*objective.model.parameters(), *objective.owned.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(60):  # the best arm pays 1, others 0; every arm is best equally often
        best = torch.arange(40) % ARMS
        actions = torch.randint(0, ARMS, (40, N), generator=g)
        rewards = (actions == best[:, None]).float()
        batch = Batch.of(
            {"context": transition_features(actions, rewards, ARMS), "actions": best}, micro=step
        )
        out = objective(batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    assert out.terms["dpt"].count == 40 * (N + 1) and out.sample_losses.shape == (40,)
    assert out.metrics["accuracy_full"] > 0.8 > 0.4 > out.metrics["accuracy_empty"]
    with torch.no_grad():
        probs = torch.softmax(action_logits(objective.model, objective.owned, empty)[0, 0], -1)
    assert (probs - 1 / ARMS).abs().max() < 0.05  # the prior is symmetric in the arms


def test_without_every_prefix_only_the_full_context_is_supervised():
    objective = policy(every_prefix=False)
    actions, rewards = histories()
    batch = Batch.of(
        {"context": transition_features(actions, rewards, ARMS), "actions": actions[:, 0]}
    )
    assert objective(batch).terms["dpt"].count == 8


def test_baselines_on_known_histories():
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([[3.0, 0.0, 2.0]])
    sums = torch.tensor([[2.7, 0.0, 0.2]])
    assert base.ucb(counts, sums, 5, g).item() == 1  # an untried arm first
    assert base.lcb(counts, sums).item() == 0 and base.greedy(counts, sums).item() == 0
    many = torch.tensor([[100.0, 100.0, 100.0]])
    picks = base.thompson(many, many * torch.tensor([[0.9, 0.1, 0.2]]), 300, g)
    assert picks.item() == 0


def test_baselines_beat_uniform_online_and_bad_eval_settings_name_the_option():
    settings = BanditSettings(arms=3, horizon=30)
    result = evaluate(None, settings, seeds=3, tasks=40, sizes=[0, 30])
    final = {name: c["mean"][-1] for name, c in result["online"].items()}
    assert final["thompson"] < final["uniform"] and final["ucb"] < final["uniform"]
    assert result["offline"]["lcb"]["30"]["accuracy"] > result["offline"]["lcb"]["0"]["accuracy"]
    with pytest.raises(UserError, match="--seeds=0"):
        evaluate(None, settings, seeds=0)
