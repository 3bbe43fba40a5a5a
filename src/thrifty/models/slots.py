"""Slot Attention (Locatello et al. 2020) and a transformer pooling head over slots (OCR-RL,
Yoon et al. 2023; ``papers/ocr_rl.md``).

``SlotAttention`` groups a set of input features (B, N, D_in) — a ViT's patch tokens — into K
slots (B, K, D). Slots start as samples of a learned Gaussian and compete for inputs: the
attention is normalised over slots (softmax on the slot axis), then each slot takes the
weighted mean of the inputs it won, and a GRU and a residual MLP update it, T times. Nothing
in it tells slots apart but their initial values, so it is permutation-equivariant in them:
permuting the initial slots permutes the output.

``SlotPooling`` reads a set of slots into one vector: a learned CLS token joins the slots, one
pre-norm transformer layer runs over them with no position information, and the CLS state is
the output, so it is invariant to the slots' order (the pooling the paper finds best).
"""

from __future__ import annotations

import torch
from torch import nn


def gaussian_noise(uniforms: torch.Tensor) -> torch.Tensor:
    """Standard normals from uniforms in [0, 1) (the inverse CDF), so a keyed stream of
    uniforms (``Objective.random``) gives the slots' initial noise."""
    return torch.special.ndtri(uniforms.clamp(1e-6, 1 - 1e-6))


class SlotAttention(nn.Module):
    """(B, N, in_dim) inputs -> (B, K, dim) slots and the last attention (B, K, N)."""

    def __init__(
        self, in_dim: int, dim: int, num_slots: int, iterations: int, hidden: int | None = None
    ) -> None:
        super().__init__()
        self.num_slots, self.iterations, self.dim = num_slots, iterations, dim
        self.mu = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.log_sigma = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm_inputs = nn.LayerNorm(in_dim)
        self.norm_slots = nn.LayerNorm(dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(in_dim, dim, bias=False)
        self.to_v = nn.Linear(in_dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        hidden = hidden or 2 * dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def initial_slots(self, noise: torch.Tensor) -> torch.Tensor:
        """(B, K, dim) slots from standard-normal ``noise`` (B, K, dim): mu + sigma · noise."""
        return self.mu + self.log_sigma.exp() * noise

    def forward(
        self, inputs: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, K, D = inputs.shape[0], self.num_slots, self.dim
        inputs = self.norm_inputs(inputs)
        k, v = self.to_k(inputs), self.to_v(inputs)  # (B, N, D)
        slots = self.initial_slots(noise)
        for _ in range(self.iterations):
            previous = slots
            q = self.to_q(self.norm_slots(slots)) * D**-0.5  # (B, K, D)
            attn = torch.einsum("bkd,bnd->bkn", q, k).softmax(dim=1)  # slots compete per input
            weights = attn + 1e-8  # a slot that wins nothing still takes a defined mean
            updates = torch.einsum("bkn,bnd->bkd", weights / weights.sum(-1, keepdim=True), v)
            slots = self.gru(updates.reshape(B * K, D), previous.reshape(B * K, D))
            slots = slots.reshape(B, K, D)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn

    def flops(self, n_inputs: int) -> float:
        """Forward FLOPs for one image of ``n_inputs`` features (matmuls, 2 per multiply-add)."""
        K, D, T, N = self.num_slots, self.dim, self.iterations, n_inputs
        keys_values = 2 * self.to_k.in_features * D * N
        # query, logits and means, the GRU's six D x D matrices, the MLP; per slot
        per_slot = D * D + 2 * N * D + 6 * D * D + 2 * self.mlp[0].out_features * D
        return 2.0 * (keys_values + T * K * per_slot)


class SlotPooling(nn.Module):
    """(B, K, dim) slots -> (B, out_dim): a CLS token after one transformer layer over slots."""

    def __init__(self, dim: int, out_dim: int, heads: int = 2) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out_dim), nn.ReLU())

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls.expand(slots.shape[0], -1, -1), slots], dim=1)
        return self.out(self.layer(x)[:, 0])
