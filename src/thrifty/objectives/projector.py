"""ScaleKD's cross-attention projector and dual-view feature mimicking (Fan et al. 2024;
`papers/scalekd.md`), used by the ``scalekd`` objective.

The **cross-attention projector** (CAP) turns a student's feature tokens (a CNN's feature map
cells or a ViT's patches, any number of them) into teacher-like tokens: the student tokens are
projected to the teacher's width and given a learned position embedding, and one learned
query per teacher token position attends to them (multi-head cross-attention), followed by a
residual MLP. The output therefore has the teacher's token grid whatever the student's
resolution, which is what lets a local-computing CNN be compared token by token with a
global-attention ViT.

**Dual-view mimicking** matches the projected tokens P to the teacher's final tokens F in two
views: the original space (MSE) and a frequency view without the direct (DC) component.
ScaleKD takes the DCT over the token grid and drops its DC coefficient; with an orthonormal
DCT the squared error of the remaining coefficients equals (Parseval) the squared error after
subtracting each channel's mean over the tokens, which is computed here, with no transform.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttentionProjector(nn.Module):
    """(B, S, C_s) student tokens -> (B, N, C_t) tokens on the teacher's grid of N positions."""

    def __init__(
        self, student_width: int, student_tokens: int, width: int, tokens: int, heads: int
    ) -> None:
        super().__init__()
        self.heads = heads
        self.enter = nn.Linear(student_width, width)
        self.position = nn.Parameter(torch.randn(student_tokens, width) * 0.02)
        self.queries = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.q, self.kv = nn.Linear(width, width), nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )
        self.shape = (student_tokens, tokens, width)

    def forward(self, student: torch.Tensor) -> torch.Tensor:
        B, S, _ = student.shape
        N, C, h = self.queries.shape[0], self.queries.shape[1], self.heads
        keys = self.enter(student) + self.position  # (B, S, C)
        k, v = self.kv(keys).view(B, S, 2, h, C // h).permute(2, 0, 3, 1, 4)  # (B, h, S, C/h)
        q = self.q(self.queries).view(1, N, h, C // h).transpose(1, 2).expand(B, -1, -1, -1)
        attended = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, C/h)
        x = self.out(attended.transpose(1, 2).reshape(B, N, C))
        return x + self.mlp(x)

    def flops_per_image(self) -> float:
        """Training FLOPs (forward + backward) of one image's projection."""
        S, N, C = self.shape
        macs = S * self.enter.weight.numel() + S * self.kv.weight.numel()  # keys and values
        macs += N * (self.q.weight.numel() + self.out.weight.numel())
        macs += 2 * N * S * C  # scores and the weighted sum
        macs += N * sum(m.weight.numel() for m in self.mlp if isinstance(m, nn.Linear))
        return 6.0 * macs


def spatial_mse(projected: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared error per image in the original feature space."""
    return (projected.float() - teacher.float()).square().mean((1, 2))


def frequency_mse(projected: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared error per image with the DC component (each channel's mean over the
    tokens) removed from both: the error of the non-DC DCT coefficients (module docstring)."""
    p, t = projected.float(), teacher.float()
    return ((p - p.mean(1, keepdim=True)) - (t - t.mean(1, keepdim=True))).square().mean((1, 2))


def softened_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B,) KL(teacher ‖ student) of temperature-softened logits, times T² (Hinton et al. 2015:
    keeps the gradient's size independent of T)."""
    log_p = F.log_softmax(teacher.float() / temperature, -1)
    log_q = F.log_softmax(student.float() / temperature, -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1) * temperature**2
