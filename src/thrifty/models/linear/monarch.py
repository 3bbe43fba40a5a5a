"""``monarch``: a product of two block-diagonal matrices with a reshape-transpose in between.

Monarch matrices (Dao et al., "Monarch: Expressive Structured Matrices for Efficient and
Accurate Training", ICML 2022, arXiv 2204.00595), in the rectangular convention of the
reference code (HazyResearch/fly). With b blocks, p = d_in / b, s = d_out / b and a middle
block size q = min(p, s):

- ``right`` (b, q, p) is the first block-diagonal factor R: block k maps x[k·p : (k+1)·p];
- its output, b blocks of q (index k·q + j), is viewed as a (q, b) matrix and transposed, so
  block l of the second factor reads the middle entries m with m mod b = l, in order of m // b;
- ``left`` (b, s, q) is the second factor L; output entry (block l, row s') lands at s'·b + l.

For the square case n = b²: y[s'·b + l] = Σ_r Σ_p left[l, s', r] · right[r, l, p] · x[r·b + p].
Parameters and multiply-accumulates per token are both q·(d_in + d_out), two batched matmuls.

``project`` is the paper's closed-form projection of a dense matrix onto this set; ``densify``
(in densify.py) turns trained Monarch layers dense for the paper's reverse sparsification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.models.linear.base import LINEARS


def block_sizes(blocks: int, d_in: int, d_out: int) -> tuple[int, int, int]:
    """(p, q, s): input, middle and output block sizes of a d_in -> d_out Monarch layer."""
    if blocks < 1 or d_in % blocks or d_out % blocks:
        raise UserError(
            f"model.linear.blocks={blocks}: the number of Monarch blocks must divide both "
            f"dimensions of every linear layer, here d_in={d_in} and d_out={d_out}"
        )
    p, s = d_in // blocks, d_out // blocks
    return p, min(p, s), s


def monarch_multiply(x: torch.Tensor, right: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """(..., d_in) -> (..., d_out) through right (b, q, p), the permutation, left (b, s, q)."""
    b, q, p = right.shape
    s = left.shape[1]
    lead = x.shape[:-1]
    h = torch.einsum("kqp,nkp->nkq", right, x.reshape(-1, b, p))  # (N, b, q)
    h = h.reshape(-1, q, b).transpose(1, 2)  # (N, b, q): block l holds middle entries m ≡ l
    y = torch.einsum("lsr,nlr->nsl", left, h)  # (N, s, b): read out as s'·b + l
    return y.reshape(*lead, s * b)


def project(weight: torch.Tensor, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(right, left) of the Monarch matrix nearest to ``weight`` (d_out, d_in) in Frobenius norm.

    Entry (s'·b + l, k·p + p') of a Monarch matrix is Σ_m left[l, s', m // b]·right[k, m % q, p']
    over the middle indices m with m mod b = l and m // q = k. So each (s, p) slice (l, k) of
    the dense matrix is a sum of that many rank-1 terms, every factor entry belongs to exactly
    one slice, and the slices can be fitted independently: the truncated SVD of each slice is
    optimal (Eckart-Young). In the square case n = b² every slice is rank 1 (the paper's
    Algorithm 1).
    """
    d_out, d_in = weight.shape
    p, q, s = block_sizes(blocks, d_in, d_out)
    b = blocks
    work = weight.detach().to(torch.promote_types(weight.dtype, torch.float32))  # SVD needs fp32+
    slices = work.reshape(s, b, b, p).permute(1, 2, 0, 3)  # (l, k, s, p)
    U, S, Vh = torch.linalg.svd(slices, full_matrices=False)
    m = torch.arange(b * q, device=weight.device)
    l, r = m % b, m // b  # where middle index m enters the left factor
    k, j = m // q, m % q  # where it leaves the right factor
    # Rank of m among the middle indices of its slice: the slice's smallest r is
    # ceil((k·q - l) / b). At most ceil(q / b) <= min(s, p) indices share a slice.
    rank = r - (k * q - l + b - 1) // b
    root = S[l, k, rank].sqrt()[:, None]  # split each singular value evenly between the factors
    left = work.new_zeros(b, s, q)
    right = work.new_zeros(b, q, p)
    left[l, :, r] = U[l, k, :, rank] * root
    right[k, j, :] = Vh[l, k, rank, :] * root
    return right.to(weight.dtype), left.to(weight.dtype)


@LINEARS.register("monarch")
class Monarch(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        blocks: int = bounded(4, ge=1)
        """Number of diagonal blocks b per factor; must divide d_in and d_out of every layer."""

    def __init__(self, cfg: Config, d_in: int, d_out: int) -> None:
        super().__init__()
        self.d_in, self.d_out, self.blocks = d_in, d_out, cfg.blocks
        p, q, s = block_sizes(cfg.blocks, d_in, d_out)
        self.right = nn.Parameter(torch.empty(cfg.blocks, q, p))
        self.left = nn.Parameter(torch.empty(cfg.blocks, s, q))
        self.reset_parameters()

    @classmethod
    def from_dense(cls, weight: torch.Tensor, blocks: int) -> Monarch:
        """The Monarch layer nearest to ``weight`` (d_out, d_in), by ``project``."""
        d_out, d_in = weight.shape
        layer = cls(cls.Config(blocks=blocks), d_in, d_out).to(weight.device, weight.dtype)
        right, left = project(weight, blocks)
        with torch.no_grad():
            layer.right.copy_(right)
            layer.left.copy_(left)
        return layer

    def reset_parameters(self, std: float | None = None) -> None:
        b, q, p = self.right.shape
        if std is None:  # the paper's init: Kaiming-uniform per block, fan-in = block input size
            nn.init.uniform_(self.right, -1 / math.sqrt(p), 1 / math.sqrt(p))
            nn.init.uniform_(self.left, -1 / math.sqrt(q), 1 / math.sqrt(q))
            return
        # An entry of M sums on average q / b products of one entry of each factor, so its
        # variance is (q / b)·σ_R²·σ_L². Both factors get the same σ: equal factor scales are
        # where weight decay on both drives a product, and give both the same relative Adam step.
        factor_std = math.sqrt(std * math.sqrt(b / q))
        nn.init.normal_(self.right, 0.0, factor_std)
        nn.init.normal_(self.left, 0.0, factor_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return monarch_multiply(x, self.right, self.left)

    def dense_weight(self) -> torch.Tensor:
        """The (d_out, d_in) matrix this layer applies: the layer applied to the identity."""
        eye = torch.eye(self.d_in, dtype=self.right.dtype, device=self.right.device)
        return monarch_multiply(eye, self.right, self.left).T.contiguous()

    def macs_per_token(self) -> int:
        return self.right.numel() + self.left.numel()
