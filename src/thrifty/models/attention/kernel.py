"""``scaled_dot_product``: PyTorch's scaled dot-product attention, or on a CPU in bf16 at short
windows the plain math path, which is faster there.

PyTorch's CPU flash kernel in bf16 costs about the same per token from 128 to 512 positions:
at 128 it takes 1.7-2.7x the time of scores, fp32 softmax and weighted sum done as three
batched matmul-sized steps (forward + backward, 32 x 4 heads x 128 x 64, on 2-core CPUs: an
Intel Xeon with AMX and an AMD EPYC with AVX-512 bf16; BENCHMARKS.md). At 256 positions the
math path still wins with AMX but not without it, and from 512 on the flash kernel wins
everywhere, its memory linear in the window while the math path holds the (T, T) scores. The
math path is what ``transformers`` calls eager attention: scores in bf16, softmax in fp32,
rounded to bf16. Explicit masks keep the flash kernel (a fully masked row would otherwise turn
into NaN here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Longest window given the math path on a CPU in bf16 (where it wins on every CPU measured).
CPU_BF16_MATH_MAX_LEN = 128


def scaled_dot_product(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool
) -> torch.Tensor:
    """Attention of (B, H, T, hd) heads; ``mask``: boolean, True = may attend."""
    T = q.shape[-2]
    if _cpu_bf16(q) and mask is None and T == k.shape[-2] and T <= CPU_BF16_MATH_MAX_LEN:
        return _math_attention(*(t.to(torch.bfloat16) for t in (q, k, v)), causal)
    causal = causal and mask is None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


def _cpu_bf16(q: torch.Tensor) -> bool:
    """Whether attention runs in bf16 on a CPU: bf16 heads, or bf16 autocast (which would cast
    fp32 heads to bf16 for the kernel)."""
    if q.device.type != "cpu":
        return False
    if q.dtype == torch.bfloat16:
        return True
    autocast = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu")
    return autocast == torch.bfloat16 and q.dtype == torch.float32


def _math_attention(q, k, v, causal: bool) -> torch.Tensor:
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # (B, H, T, T), bf16
    if causal:
        T = q.shape[-2]
        later = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
        scores.masked_fill_(later, float("-inf"))  # the product's own block, not a copy
    # PyTorch's CPU softmax computes bf16 rows in fp32 and rounds once: the same probabilities
    # as softmax(scores.float()).to(bf16), without the two casts and their backward (forward +
    # backward of 32 x 4 x 128 x 64 heads on a 2-core CPU: 21 -> 12.5 ms).
    return torch.softmax(scores, dim=-1) @ v
