"""RoPE context extension: position interpolation and YaRN."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.models.rope import apply_rope, rope_tables, yarn_attention_scale

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


def rotate_half_formula(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Llama's reference rotation, which ``apply_rope`` computes half by half."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


@pytest.mark.parametrize(
    "rows",
    [
        lambda t: t[:4],  # (T, hd): one row per position
        lambda t: t[torch.arange(12).reshape(3, 4) * 5][:, None],  # (B, 1, T, hd): tree nodes
        lambda t: t[torch.tensor([5, 9, 2])][:, None, None],  # (B, 1, 1, hd): one read position
    ],
)
def test_rotation_and_its_gradient_equal_the_rotate_half_formula(rows):
    torch.manual_seed(0)
    cos, sin = (rows(t.double()) for t in rope_tables(HD, L, THETA))
    x = torch.randn(3, 2, 4, HD, dtype=torch.float64, requires_grad=True)
    out = apply_rope(x, cos, sin)
    expected = rotate_half_formula(x, cos, sin)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    weights = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), x)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: apply_rope(t, cos, sin), (x,))


def test_bf16_heads_are_rotated_in_bf16_and_fp32_heads_in_fp32():
    cos, sin = rope_tables(HD, L, THETA)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(2, 2, L, HD).to(dtype).requires_grad_()
        out = apply_rope(x, cos, sin)
        assert out.dtype == dtype
        expected = rotate_half_formula(x.detach().float(), cos, sin)
        tolerance = 1e-6 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(out.float(), expected, rtol=tolerance, atol=tolerance)
        out.float().sum().backward()
        assert x.grad.dtype == dtype
