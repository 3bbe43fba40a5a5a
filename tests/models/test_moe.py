"""``moe``: top-k routed SwiGLU experts, capacity per row, and their auxiliary losses."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from thrifty.config import ModelConfig, load_config
from thrifty.data.tokenizer import NUM_SPECIAL, PAD_ID
from thrifty.errors import UserError
from thrifty.models import aux
from thrifty.models.linear.lowrank import LowRank
from thrifty.models.mlp.moe import MixtureOfExperts
from thrifty.models.mlp.swiglu import SwiGLU
from thrifty.models.transformer import Transformer

MODEL = ModelConfig(size="nano", vocab_size=100)
D, FF = MODEL.d_model, MODEL.d_ff


def moe(**settings) -> MixtureOfExperts:
    torch.manual_seed(0)
    layer = MixtureOfExperts(MixtureOfExperts.Config(**settings), MODEL)
    layer.reset_parameters(0.1, 0.1)
    return layer


def swiglu_like(expert: nn.Module) -> SwiGLU:
    dense = SwiGLU(SwiGLU.Config(), MODEL)
    dense.load_state_dict(expert.state_dict())
    return dense


class FixedLogits(nn.Module):
    """A hand-made router: the same logits (E,) or per-position logits (T, E) for every row."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.float().expand(*x.shape[:-1], self.logits.shape[-1])


def test_one_expert_is_the_dense_swiglu():
    layer = moe(experts=1, top_k=1)
    dense = swiglu_like(layer.experts[0])
    x = torch.randn(3, 10, D)
    torch.testing.assert_close(layer(x), dense(x), rtol=0, atol=0)


def test_identical_experts_give_the_dense_output_for_any_router():
    layer = moe(experts=4, top_k=2)
    for expert in layer.experts[1:]:
        expert.load_state_dict(layer.experts[0].state_dict())
    nn.init.normal_(layer.router.weight, 0.0, 3.0)
    x = torch.randn(2, 12, D)
    torch.testing.assert_close(layer(x), swiglu_like(layer.experts[0])(x))


def test_top_k_above_the_number_of_experts_is_a_user_error():
    message = re.escape("model.mlp.top_k=9") + ".*" + re.escape("model.mlp.experts=4")
    with pytest.raises(UserError, match=message):
        load_config(None, ["model.mlp=moe", "model.mlp.top_k=9"])
    with pytest.raises(UserError, match=message):
        Transformer(ModelConfig(size="nano", vocab_size=100, mlp={"name": "moe", "top_k": 9}))


def test_experts_use_the_models_linear_and_their_own_width():
    cfg = ModelConfig(size="nano", vocab_size=100, linear={"name": "lowrank", "rank": 4})
    layer = MixtureOfExperts(MixtureOfExperts.Config(d_ff=48), cfg)
    assert all(
        isinstance(e.gate_up, LowRank) and isinstance(e.down, LowRank) for e in layer.experts
    )
    assert layer.experts[0].d_ff == 48
    assert isinstance(layer.router, nn.Linear) and layer.router.weight.shape == (4, D)


def test_capacity_is_per_row():
    layer = moe(experts=4, top_k=2, capacity_factor=0.5)
    x = torch.randn(4, 16, D)
    with aux.collect() as emitted:
        together = layer(x)
    assert emitted.metrics["moe_dropped"] >= 0.5  # capacity for half the assignments at most
    for row in range(4):
        torch.testing.assert_close(layer(x[row : row + 1]), together[row : row + 1])


def test_tokens_over_capacity_skip_the_expert_earlier_positions_first():
    layer = moe(experts=4, top_k=2, capacity_factor=1.0)
    layer.router = FixedLogits(torch.tensor([10.0, 5.0, 0.0, 0.0]))  # everyone: expert 0, then 1
    x = torch.randn(2, 8, D)
    with aux.collect() as emitted:
        y = layer(x)
    # capacity ceil(1.0 · 8 · 2 / 4) = 4 per expert and row: positions 0-3 keep both experts
    assert emitted.metrics["moe_dropped"] == 0.5
    assert emitted.metrics["moe_load_max"] == 2.0  # half of the assignments on one of 4 experts
    weights = torch.tensor([10.0, 5.0]).softmax(0)
    want = weights[0] * layer.experts[0](x[:, :4]) + weights[1] * layer.experts[1](x[:, :4])
    torch.testing.assert_close(y[:, :4], want)
    assert torch.equal(y[:, 4:], torch.zeros_like(y[:, 4:]))


def test_uniform_routing_has_balance_one():
    E, T = 4, 8
    layer = moe(experts=E, top_k=1)
    # position t prefers expert t mod 4 by the same margin: f_i = P_i = 1/4 for every expert
    logits = torch.stack([torch.eye(E)[t % E] for t in range(T)])
    layer.router = FixedLogits(logits)
    with aux.collect() as emitted:
        layer(torch.randn(3, T, D))
    torch.testing.assert_close(emitted.terms["moe_balance"].value, torch.tensor(1.0))
    assert emitted.metrics["moe_load_max"] == 1.0


def local_counts(layer: MixtureOfExperts, x: torch.Tensor) -> torch.Tensor:
    """What this half hands to all_sum: per-expert choices and the number dropped."""
    seen = []
    with aux.collect(all_sum=lambda t: seen.append(t) or t):
        layer(x)
    return seen[0]


def test_two_ranks_give_the_one_process_terms():
    layer = moe(experts=4, top_k=2, capacity_factor=1.0)
    x = torch.randn(6, 10, D)
    a, b = x[:2], x[2:]  # unequal halves: the global formula weighs tokens, not ranks
    with aux.collect() as whole:
        layer(x)
    counts_a, counts_b = local_counts(layer, a), local_counts(layer, b)
    with aux.collect(all_sum=lambda t: t + counts_b) as rank_a:
        layer(a)
    with aux.collect(all_sum=lambda t: t + counts_a) as rank_b:
        layer(b)
    for name in ("moe_balance", "moe_z"):
        parts = [rank_a.terms[name], rank_b.terms[name]]
        combined = sum(t.total for t in parts) / sum(t.count for t in parts)
        torch.testing.assert_close(combined, whole.terms[name].value)
    assert rank_a.metrics["moe_dropped"] == whole.metrics["moe_dropped"]
    assert rank_b.metrics["moe_load_max"] == whole.metrics["moe_load_max"]


def test_gradients_reach_the_router_through_weights_and_balance():
    layer = moe(experts=4, top_k=2)
    x = torch.randn(2, 8, D)
    layer(x).pow(2).sum().backward()  # outside collect: the routing weights alone
    assert layer.router.weight.grad.abs().sum() > 0
    layer.zero_grad()
    with aux.collect() as emitted:
        layer(x)
    emitted.terms["moe_balance"].total.backward()
    assert layer.router.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in layer.experts.parameters())


def test_record_routes_keeps_each_tokens_choice_by_weight():
    layer = moe(experts=4, top_k=2)
    x = torch.randn(3, 7, D)
    layer(x)
    assert layer.last_routes is None  # off by default
    layer.record_routes = True
    layer(x)
    routes = layer.last_routes
    assert routes.shape == (3, 7, 2) and routes.dtype == torch.int64
    assert routes.min() >= 0 and routes.max() < 4 and not routes.requires_grad
    assert (routes[..., 0] != routes[..., 1]).all()
    probs = layer.router(x).softmax(-1).gather(-1, routes)
    assert (probs[..., 0] >= probs[..., 1]).all()


def test_flops_count_the_router_and_top_k_experts():
    layer = moe(experts=8, top_k=2, d_ff=96)
    assert layer.flops_per_token(32) == 6 * (D * 8 + 2 * (D * 2 * 96 + 96 * D))
    model = Transformer(ModelConfig(size="nano", vocab_size=100, mlp={"name": "moe"}))
    dense = Transformer(MODEL)
    per_layer = 6 * (D * 4 + (2 - 1) * 3 * D * FF)  # top_k=2 experts where dense runs one
    assert model.flops_per_token(32) - dense.flops_per_token(32) == MODEL.n_layers * per_layer


@pytest.mark.parametrize("causal", [True, False])
def test_pads_count_in_no_auxiliary_term_or_metric(causal):
    torch.manual_seed(0)
    cfg = ModelConfig(size="nano", vocab_size=100, mlp={"name": "moe", "capacity_factor": 2.0})
    model = Transformer(cfg)
    ids = torch.randint(NUM_SPECIAL, 100, (2, 6))
    padded = torch.cat([ids, torch.full((2, 4), PAD_ID)], dim=1)
    # right pads change no real token's states: causally, and with the mask when bidirectional
    with aux.collect() as alone:
        model(ids, causal=causal)
    with aux.collect() as with_pads:
        model(padded, causal=causal, padding=None if causal else padded != PAD_ID)
    for name in ("moe_balance", "moe_z"):
        torch.testing.assert_close(with_pads.terms[name].value, alone.terms[name].value)
        assert with_pads.terms[name].count == alone.terms[name].count == ids.numel()
    for name in ("moe_load_max", "moe_dropped"):
        torch.testing.assert_close(with_pads.metrics[name], alone.metrics[name])
