"""Block slots: registries for the block layout, attention, MLP and per-projection linears."""

from __future__ import annotations

import re

import pytest
import torch

from thrifty.config import ModelConfig, load_config
from thrifty.errors import UserError
from thrifty.models.block.parallel import ParallelBlock
from thrifty.models.linear.dense import Dense
from thrifty.models.linear.lowrank import LowRank
from thrifty.models.transformer import Transformer


def nano(**settings) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(size="nano", vocab_size=100, **settings))


def test_a_member_named_by_a_string_is_a_section():
    cfg = load_config(None, ["model.block=parallel", "model.projections.down=lowrank"])
    assert cfg.model.block == {"name": "parallel"}
    assert cfg.model.projections == {"down": {"name": "lowrank"}}
    cfg = load_config(None, ["model.linear=lowrank", "model.linear.rank=4"])
    assert cfg.model.linear == {"name": "lowrank", "rank": 4}


def test_projections_override_the_global_linear_per_role():
    model = nano(linear={"name": "lowrank", "rank": 4}, projections={"qkv": {"name": "dense"}})
    block = model.blocks[0]
    assert isinstance(block.attn.qkv, Dense)
    assert all(isinstance(m, LowRank) for m in (block.attn.out, block.mlp.gate_up, block.mlp.down))


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.projections.qvk=lowrank", "model.projections.qvk (did you mean 'qkv'?)"),
        ("model.block=paralel", "unknown block 'paralel' (did you mean 'parallel'?)"),
        ("model.mlp.experts=4", "unknown config key 'model.mlp.experts'"),
        ("model.attention=moe", "unknown attention 'moe'"),
    ],
)
def test_bad_slot_settings_name_the_key(override, message):
    with pytest.raises(UserError, match=re.escape(message)):
        load_config(None, [override])


def test_parallel_block_reads_one_norm_for_both_branches():
    model = nano(block={"name": "parallel"})
    block = model.blocks[0]
    assert isinstance(block, ParallelBlock)
    assert not hasattr(block, "attn_norm") and not hasattr(block, "mlp_norm")
    x = torch.randn(2, 8, 64)
    cos, sin = model.rope_cos[:8], model.rope_sin[:8]
    h = block.norm(x)
    want = x + block.attn(h, cos, sin, True, None) + block.mlp(h)
    torch.testing.assert_close(block(x, cos, sin, True, None), want)
    # same parameters as a sequential block, less one norm
    assert nano().num_params() - model.num_params() == 2 * 64


def test_flops_are_the_sum_of_the_members():
    dense, low = nano(), nano(linear={"name": "lowrank", "rank": 4})
    T = 32
    assert dense.flops_per_token(T) == (
        6 * (dense.num_params() - dense.embed.weight.numel() - 5 * 64)  # matrices, not norms
        + 12 * 2 * T * 64
        + 6 * dense.embed.weight.numel()
    )
    saved = dense.flops_per_token(T) - low.flops_per_token(T)
    assert saved == 6 * (dense.num_params() - low.num_params())


def test_the_transformer_leaves_each_linear_members_init_to_it(monkeypatch):
    calls = []
    original = LowRank.reset_parameters

    def spy(self, std=None):
        calls.append(std)
        return original(self, std)

    monkeypatch.setattr(LowRank, "reset_parameters", spy)
    nano(linear={"name": "lowrank", "rank": 4})
    out_std = 0.02 / 2  # GPT-2's 1/sqrt(2 · n_layers) with 2 layers
    given = [s for s in calls if s is not None]
    assert given == [0.02, out_std, 0.02, out_std] * 2  # qkv, out, gate_up, down per block


def test_shortcuts_fall_back_to_the_full_pass_for_other_layouts():
    from thrifty.analysis.sampling import Decoder
    from thrifty.eval.readout import hidden_at

    model = nano(block={"name": "parallel"}).eval()
    ids = torch.randint(0, 100, (2, 6))
    read = torch.tensor([1, 4])
    with torch.no_grad():
        full = model(ids, causal=False)
        torch.testing.assert_close(hidden_at(model, ids, None, read), full[[0, 1], read])
        decoder = Decoder(model, 2, 6)
        for t in range(6):
            logits = decoder.step(ids[:, t])
        torch.testing.assert_close(logits, model.logits(model(ids, causal=True))[:, -1])


@pytest.mark.parametrize("causal", [True, False])
def test_document_attention_computes_each_packed_document_as_if_alone(causal):
    from thrifty.data.tokenizer import BOS_ID

    model = nano(document_attention=True).eval()
    first = torch.tensor([[BOS_ID, 11, 12, 13, 14]])
    second = torch.tensor([[BOS_ID, 21, 22, 23]])
    packed = torch.cat([first, second], dim=1)
    with torch.no_grad():
        together = model(packed, causal=causal)
        torch.testing.assert_close(together[:, :5], model(first, causal=causal))
        torch.testing.assert_close(
            together[:, 5:], model(second, causal=causal), atol=1e-5, rtol=1e-5
        )
        plain = nano().eval()
        plain.load_state_dict(model.state_dict())
        assert not torch.allclose(plain(packed, causal=causal)[:, 5:], together[:, 5:])
