"""``scaled_dot_product``: the math path it takes on a CPU in bf16 at short windows must equal
PyTorch's kernel, and be taken only where it is meant to be."""

import pytest
import torch
import torch.nn.functional as F

from thrifty.models.attention import kernel
from thrifty.models.attention.kernel import scaled_dot_product


def heads(T, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, T, 16, generator=g).to(dtype).requires_grad_() for _ in range(3)]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("autocast", [False, True])
def test_math_path_matches_sdpa(causal, autocast):
    """bf16 heads, or fp32 heads under bf16 autocast: output and gradients agree with fp32
    SDPA at bf16 precision."""
    dtype = torch.float32 if autocast else torch.bfloat16
    q, k, v = heads(24, dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = scaled_dot_product(q, k, v, None, causal)
    assert out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    ref_q, ref_k, ref_v = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(ref_q, ref_k, ref_v, is_causal=causal)
    ref.square().sum().backward()
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)
    for got, want in ((q, ref_q), (k, ref_k), (v, ref_v)):
        assert (got.grad.float() - want.grad).abs().max() < 3e-2 * want.grad.abs().max()


def test_math_path_only_for_short_unmasked_cpu_bf16_self_attention(monkeypatch):
    calls = []
    math = kernel._math_attention
    monkeypatch.setattr(kernel, "_math_attention", lambda *a: calls.append(1) or math(*a))
    short, long = kernel.CPU_BF16_MATH_MAX_LEN, kernel.CPU_BF16_MATH_MAX_LEN + 1
    with torch.no_grad():
        scaled_dot_product(*heads(short, torch.bfloat16), None, True)
        assert len(calls) == 1
        scaled_dot_product(*heads(long, torch.bfloat16), None, True)  # flash: linear memory
        scaled_dot_product(*heads(8), None, True)  # fp32
        q, k, v = heads(8, torch.bfloat16)
        scaled_dot_product(q, k, v, torch.ones(8, 8, dtype=torch.bool), False)  # explicit mask
        scaled_dot_product(q, k[..., :5, :], v[..., :5, :], None, False)  # cross-attention
        with torch.autocast("cpu", dtype=torch.float16):
            scaled_dot_product(*heads(8), None, True)
    assert len(calls) == 1
