"""The CPU training attention function against unbind -> RoPE -> SDPA (values, gradients)."""

from __future__ import annotations

import pytest
import torch

from thrifty.models.attention import cpu_training
from thrifty.models.attention.mha import attend
from thrifty.models.rope import rope_tables

B, T, H, HD = 2, 7, 3, 16


def _inputs(dtype):
    torch.manual_seed(0)
    qkv = torch.randn(B, T, 3, H, HD, dtype=dtype, requires_grad=True)
    cos, sin = (t.to(dtype) for t in rope_tables(HD, T, 10000.0))
    return qkv, cos, sin


@pytest.mark.parametrize("causal", [True, False])
def test_function_passes_gradcheck(causal):
    qkv, cos, sin = _inputs(torch.float64)
    fn = cpu_training._RopeAttention.apply
    assert torch.autograd.gradcheck(lambda x: fn(x, cos, sin, causal), (qkv,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("causal", [True, False])
def test_values_and_gradients_equal_the_reference_path(dtype, causal):
    qkv, cos, sin = _inputs(dtype)
    assert cpu_training.applies(qkv, cos, None)
    weights = torch.randn(B, T, H * HD)
    out = cpu_training.rope_attention(qkv, cos, sin, causal)
    (grad,) = torch.autograd.grad((out.float() * weights).sum(), qkv)
    q, k, v = qkv.unbind(2)
    expected = attend(q, k, v, cos, sin, causal, None)
    (expected_grad,) = torch.autograd.grad((expected.float() * weights).sum(), qkv)
    assert out.dtype == dtype and out.shape == expected.shape
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(out, expected, **tol)
    torch.testing.assert_close(grad, expected_grad, **tol)


def test_takes_only_eager_cpu_training_without_masks():
    qkv, cos, sin = _inputs(torch.float32)
    assert not cpu_training.applies(qkv, cos, torch.ones(B, 1, 1, T, dtype=torch.bool))
    assert not cpu_training.applies(qkv.detach(), cos, None)  # scoring keeps SDPA
    per_row = cos[None, None].expand(B, 1, T, HD)
    assert not cpu_training.applies(qkv, per_row, None)  # per-row tables (prefix trees, MAE)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not cpu_training.applies(qkv, cos, None)  # autocast would run SDPA in bf16
    long = torch.randn(1, cpu_training.MAX_LEN + 1, 3, H, HD, requires_grad=True)
    assert not cpu_training.applies(long, rope_tables(HD, long.shape[1], 1e4)[0], None)
