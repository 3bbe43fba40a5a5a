"""RoPE + attention (causal or bidirectional, no explicit mask) from the fused q/k/v
projection, for eager CPU training at short windows: one autograd function whose backward
writes the gradients of q, k and v straight into one (B, T, 3, H, hd) tensor.

Autograd over ``unbind`` -> RoPE -> ``scaled_dot_product_attention`` pays for copies around
the kernel (the heads made contiguous for it, then the three gradients stacked back into the
projection's layout) and for PyTorch's CPU flash kernel, which at 128 positions runs its
matmuls in small tiles. Here the scores, softmax and weighted sum are three batched matmul-sized
steps (what ``transformers`` calls eager attention), RoPE writes the rotated heads in the layout
the matmuls read, and the backward rotates the query and key gradients straight into their
slots of the projection's gradient. Forward + backward of one layer (32 x 128 tokens, 4 heads
of 64) on a 2-core CPU: 20.3 -> 17.3 ms in fp32, 10.4 -> 8.8 ms in bf16; mini's whole step
2% faster in fp32 and 5% in bf16 (BENCHMARKS.md). No PyTorch kernel fuses these on a CPU,
hence the hand-written function. Under bf16 the matmuls run in bf16 and the softmax in fp32
rounded once to bf16, as the math path of ``kernel.py`` does."""

from __future__ import annotations

import torch

from thrifty.models.rope import rotate_halves, rotation_halves

# Longest window given this path: the (B, H, T, T) probabilities it keeps for backward grow
# with T², where the flash kernel's memory stays linear (and its tiles stop being small).
MAX_LEN = 128


def applies(qkv: torch.Tensor, cos: torch.Tensor, mask: torch.Tensor | None) -> bool:
    """Whether the function takes this call: eager CPU training, no explicit mask, one RoPE
    table for all rows, a window of at most ``MAX_LEN``, bf16 heads or fp32 ones outside
    autocast (which would otherwise run the kernel in bf16)."""
    T = qkv.shape[1]
    precision = qkv.dtype == torch.bfloat16 or (
        qkv.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    )
    return (
        qkv.device.type == "cpu"
        and torch.is_grad_enabled()
        and qkv.requires_grad
        and not torch.compiler.is_compiling()
        and mask is None
        and cos.shape == (T, qkv.shape[-1])
        and T <= MAX_LEN
        and precision
    )


def rope_attention(
    qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, causal: bool
) -> torch.Tensor:
    """(B, T, 3, H, hd) fused projections -> (B, T, H · hd) attention output."""
    with torch.autocast("cpu", enabled=False):  # the dtypes are chosen here, not by autocast
        return _RopeAttention.apply(qkv, cos.to(qkv.dtype), sin.to(qkv.dtype), causal)


class _RopeAttention(torch.autograd.Function):
    """softmax(q kᵀ / √hd + causal mask) v with RoPE'd q and k, from and to the projections'
    layouts. The scale 1/√hd rides on the query's rotation tables (exact for hd = 4ⁿ)."""

    @staticmethod
    def forward(ctx, qkv, cos, sin, causal):
        B, T, _, H, hd = qkv.shape
        heads = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, T, hd), views
        scale = hd**-0.5
        (q_forward, _), (k_forward, _) = rotation_halves(cos, sin, scale), rotation_halves(cos, sin)
        q = rotate_halves(heads[0], *q_forward).view(B * H, T, hd)  # scaled
        k = rotate_halves(heads[1], *k_forward).view(B * H, T, hd)
        v = heads[2].reshape(B * H, T, hd)
        if causal:  # the causal mask added in the scores' matmul itself
            later = torch.full((T, T), float("-inf"), dtype=qkv.dtype).triu_(1)
            scores = torch.baddbmm(later, q, k.transpose(1, 2))
        else:
            scores = torch.bmm(q, k.transpose(1, 2))
        probs = torch.softmax(scores, dim=-1)  # bf16 rows are computed in fp32, rounded once
        ctx.save_for_backward(q, k, v, probs, cos, sin)
        out = torch.bmm(probs, v).view(B, H, T, hd)
        return out.transpose(1, 2).reshape(B, T, H * hd)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, probs, cos, sin = ctx.saved_tensors
        B, T, C = grad_out.shape
        H, hd = C // q.shape[-1], q.shape[-1]
        grad = grad_out.view(B, T, H, hd).transpose(1, 2).reshape(B * H, T, hd)
        grad_qkv = grad_out.new_empty(B, T, 3, H, hd)
        slots = grad_qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, T, hd), views
        slots[2].copy_(torch.bmm(probs.transpose(1, 2), grad).view(B, H, T, hd))
        grad_scores = torch._softmax_backward_data(
            torch.bmm(grad, v.transpose(1, 2)), probs, -1, probs.dtype
        )
        (_, q_backward), (_, k_backward) = (
            rotation_halves(cos, sin, hd**-0.5),
            rotation_halves(cos, sin),
        )
        grad_q = torch.bmm(grad_scores, k).view(B, H, T, hd)
        rotate_halves(grad_q, *q_backward, out=slots[0])
        grad_k = torch.bmm(grad_scores.transpose(1, 2), q).view(B, H, T, hd)
        rotate_halves(grad_k, *k_backward, out=slots[1])
        return grad_qkv, None, None, None
