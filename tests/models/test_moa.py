"""``moa``: BAM's soft mixture of attention experts, full and with shared keys and values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thrifty.config import ModelConfig
from thrifty.models.attention.mha import MultiHeadAttention
from thrifty.models.attention.moa import MixtureOfAttention
from thrifty.models.rope import rope_tables

MODEL = ModelConfig(size="nano", vocab_size=100)
D, T = MODEL.d_model, 12
COS, SIN = rope_tables(D // MODEL.n_heads, T, MODEL.rope_theta)


def moa(experts: int, share_kv: bool) -> MixtureOfAttention:
    torch.manual_seed(0)
    layer = MixtureOfAttention(MixtureOfAttention.Config(experts=experts, share_kv=share_kv), MODEL)
    layer.reset_parameters(0.1, 0.1)
    return layer


def dense_experts(layer: MixtureOfAttention) -> list[MultiHeadAttention]:
    """One mha per expert with that expert's weights (shared kv: qkv rows [q_i; kv])."""
    out = []
    for expert in layer.experts:
        mha = MultiHeadAttention(MultiHeadAttention.Config(), MODEL)
        if layer.share_kv:
            qkv = torch.cat([expert.q.weight, layer.kv.weight])
            mha.load_state_dict({"qkv.weight": qkv, "out.weight": expert.out.weight})
        else:
            mha.load_state_dict(expert.state_dict())
        out.append(mha)
    return out


def make_identical(layer: MixtureOfAttention) -> None:
    for expert in layer.experts[1:]:
        expert.load_state_dict(layer.experts[0].state_dict())


def padded_input() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(2, T, D)
    real = torch.ones(2, T, dtype=torch.bool)
    real[1, 8:] = False  # right padding on the second row
    return x, real


MODES = [(True, False), (False, True)]  # (causal, with a padding mask): as the transformer calls


@pytest.mark.parametrize("share_kv", [False, True])
@pytest.mark.parametrize("causal, masked", MODES)
def test_one_expert_is_mha(share_kv, causal, masked):
    layer = moa(1, share_kv)
    (mha,) = dense_experts(layer)
    x, real = padded_input()
    mask = real[:, None, None, :] if masked else None
    want = mha(x, COS, SIN, causal, mask)
    # fp32 rounding only: with gradients on, causal MHA on a CPU takes its own attention kernel
    torch.testing.assert_close(layer(x, COS, SIN, causal, mask), want)


@pytest.mark.parametrize("share_kv", [False, True])
def test_identical_experts_give_one_attention_for_any_router(share_kv):
    layer = moa(3, share_kv)
    make_identical(layer)
    nn.init.normal_(layer.router.weight, 0.0, 3.0)
    mha = dense_experts(layer)[0]
    x = torch.randn(2, T, D)
    torch.testing.assert_close(layer(x, COS, SIN, True, None), mha(x, COS, SIN, True, None))


@pytest.mark.parametrize("share_kv", [False, True])
@pytest.mark.parametrize("causal, masked", MODES)
def test_output_is_the_router_mix_of_mha_experts_in_every_mode(share_kv, causal, masked):
    layer = moa(3, share_kv)
    x, real = padded_input()
    mask = real[:, None, None, :] if masked else None
    gates = layer.router(x).softmax(-1)  # (B, T, E)
    want = sum(
        gates[..., i : i + 1] * mha(x, COS, SIN, causal, mask)
        for i, mha in enumerate(dense_experts(layer))
    )
    y = layer(x, COS, SIN, causal, mask)
    torch.testing.assert_close(y, want)
    # what must not be seen is not: the future in causal mode, padded keys with the mask
    changed = x.clone()
    changed[:, 8:] = torch.randn(2, T - 8, D)
    y2 = layer(changed, COS, SIN, causal, mask)
    torch.testing.assert_close(y2[1, :8], y[1, :8])  # row 1's pads, or its future
    if causal:
        torch.testing.assert_close(y2[0, :8], y[0, :8])
    else:  # row 0 has no padding: bidirectional tokens see its changed positions
        assert not torch.allclose(y2[0, :8], y[0, :8])


def test_sharing_keys_and_values_saves_their_matrices():
    E = 4
    full, shared = moa(E, False), moa(E, True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(full) - count(shared) == 2 * (E - 1) * D * D


@pytest.mark.parametrize("share_kv", [False, True])
def test_flops_count_every_expert_and_the_router(share_kv):
    E, seq = 3, 32
    layer = moa(E, share_kv)
    attention = 12 * seq * D
    if share_kv:
        want = 6 * (E * D + 2 * D * D + E * 2 * D * D) + E * attention
    else:
        want = 6 * (E * D + E * 4 * D * D) + E * attention
    assert layer.flops_per_token(seq) == want
