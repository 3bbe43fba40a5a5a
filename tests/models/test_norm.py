"""RMSNorm: the CPU paths (one-reduction forward, hand-written backward) against F.rms_norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from thrifty.models.norm import RMSNorm, _RMSNormFunction


def test_function_gradients_pass_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(8, dtype=torch.float64).add(0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, w: _RMSNormFunction.apply(a, w, 1e-5), (x, weight))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_training_forward_and_gradients_equal_f_rms_norm(dtype):
    torch.manual_seed(0)
    norm = RMSNorm(16, 1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 5, 16).to(dtype).requires_grad_()
    out = norm(x)
    assert out.dtype == dtype
    weights = torch.randn(4, 5, 16)
    grads = torch.autograd.grad((out.float() * weights).sum(), (x, norm.weight))
    expected = F.rms_norm(x.float(), (16,), norm.weight, 1e-5).type_as(x)
    expected_grads = torch.autograd.grad((expected.float() * weights).sum(), (x, norm.weight))
    torch.testing.assert_close(out, expected)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_frozen_weight_gets_no_gradient():
    norm = RMSNorm(8, 1e-5).requires_grad_(False)
    x = torch.randn(3, 8, requires_grad=True)
    norm(x).sum().backward()
    assert norm.weight.grad is None and x.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_scoring_forward_equals_f_rms_norm(monkeypatch, dtype):
    torch.manual_seed(1)
    norm = RMSNorm(16, 1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = (torch.randn(6, 16) * torch.logspace(-3, 3, 6)[:, None]).to(dtype)
    x[0] = 0  # an all-zero row stays zero
    monkeypatch.setattr(_RMSNormFunction, "apply", None)  # scoring must not need it
    with torch.inference_mode():
        out = norm(x)
    expected = F.rms_norm(x.float(), (16,), norm.weight, 1e-5).type_as(x)
    assert out.dtype == dtype and not out[0].any()
    torch.testing.assert_close(out, expected)
