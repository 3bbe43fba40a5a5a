"""silu(gate) · up: the training function against autograd over split -> silu -> product."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from thrifty.models.mlp import gated_product as module
from thrifty.models.mlp.gated_product import gated_product


def _autograd_reference(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.split(gate_up.shape[-1] // 2, dim=-1)
    return F.silu(gate) * up


def test_gradients_pass_gradcheck():
    torch.manual_seed(0)
    gate_up = torch.randn(2, 3, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gated_product, (gate_up,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_values_and_gradients_are_autograds_floats(dtype):
    torch.manual_seed(0)
    gate_up = (torch.randn(4, 7, 24) * 3).to(dtype).requires_grad_()
    grad_out = torch.randn(4, 7, 12).to(dtype)
    out = gated_product(gate_up)
    (grad,) = torch.autograd.grad(out, gate_up, grad_out)
    expected = _autograd_reference(gate_up)
    (expected_grad,) = torch.autograd.grad(expected, gate_up, grad_out)
    assert out.dtype == dtype and grad.is_contiguous()
    assert torch.equal(out, expected) and torch.equal(grad, expected_grad)


def test_the_function_takes_training_calls_only(monkeypatch):
    calls = []
    apply = module._GatedProduct.apply
    monkeypatch.setattr(module._GatedProduct, "apply", lambda x: calls.append(1) or apply(x))
    gate_up = torch.randn(3, 8, requires_grad=True)
    gated_product(gate_up).sum().backward()
    assert calls == [1]
    with torch.no_grad():  # scoring: nothing kept for a backward, the same floats
        assert torch.equal(gated_product(gate_up), _autograd_reference(gate_up))
    assert torch.equal(gated_product(gate_up.detach()), _autograd_reference(gate_up.detach()))
    assert calls == [1]
