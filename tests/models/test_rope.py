"""RoPE context extension: position interpolation and YaRN."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.models.rope import rope_tables, yarn_attention_scale

HD, THETA, L = 32, 10000.0, 64


def angles(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return torch.atan2(sin, cos)[:, : HD // 2]


def test_no_scaling_and_factor_one_change_nothing():
    plain = rope_tables(HD, 4 * L, THETA)
    for scaling in ("none", "linear", "yarn"):
        same = rope_tables(HD, 4 * L, THETA, scaling, 1.0, L)
        assert all(torch.equal(a, b) for a, b in zip(plain, same))


def test_linear_interpolation_maps_s_times_the_positions_onto_the_trained_ones():
    plain = angles(*rope_tables(HD, L, THETA))
    stretched = angles(*rope_tables(HD, 4 * L, THETA, "linear", 4.0, L))
    torch.testing.assert_close(stretched[::4], plain, atol=1e-5, rtol=0)


def test_yarn_keeps_fast_dimensions_interpolates_slow_ones_and_scales():
    cos, sin = rope_tables(HD, 4 * L, THETA, "yarn", 4.0, L)
    scale = yarn_attention_scale(4.0)
    assert scale == pytest.approx(0.1 * math.log(4) + 1)
    torch.testing.assert_close(cos.square() + sin.square(), torch.full_like(cos, scale**2))
    plain = angles(*rope_tables(HD, 4 * L, THETA))
    linear = angles(*rope_tables(HD, 4 * L, THETA, "linear", 4.0, L))
    yarn = angles(cos / scale, sin / scale)
    assert torch.allclose(yarn[:, 0], plain[:, 0], atol=1e-5)  # many turns within L: kept
    assert torch.allclose(yarn[:, -1], linear[:, -1], atol=1e-5)  # under one turn: divided


@pytest.mark.parametrize("scaling", ["linear", "yarn"])
def test_exported_llama_computes_the_same_positions(tmp_path, toy, scaling):
    transformers = pytest.importorskip("transformers")
    from thrifty.export import export_hf

    run = toy.build_run(tmp_path / scaling, rope_scaling=scaling, rope_factor=2.0)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        export_hf(run.run_dir, tmp_path / "hf")
    ).eval()
    ids = torch.randint(6, run.cfg.model.vocab_size, (2, 64), generator=torch.Generator())
    with torch.no_grad():
        expected = run.model.logits(run.model(ids, causal=True))
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-4, rtol=1e-4)
