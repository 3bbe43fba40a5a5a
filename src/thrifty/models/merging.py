"""Token merging on the ViT path: ToMe's bipartite soft matching with proportional attention
(Bolya et al. 2023) and SimVLG's progressive schedule (Jian et al. 2023, ``papers/simvlg.md``).

It is a key of the ``patches`` stem, ``model.stem.merge: {r: 4, schedule: progressive}``; r = 0
(the default) is off, and then the model runs exactly the code it ran before merging existed.
Other stems have no such key, so text models never reach this file.

- **Where: between blocks.** After every block but the last, r tokens of each image merge into
  others, so block l reads T - l·r tokens. ToMe merges inside the block, between attention and
  MLP; between blocks leaves every BLOCKS and ATTENTIONS member untouched (the ``parallel``
  block has no point between the two at all), at the price of one MLP per block running on
  the count before the merge.
- **Similarity: the hidden states.** The cosine similarity of the residual stream leaving the
  block, not of the attention keys ToMe uses: the attention members compute their keys inside
  and expose none (``moa`` has one set per expert). The card's invariants hold either way.
- **Matching.** Tokens alternate into A (even places) and B (odd); each a picks its most
  similar b; the r a's with the most similar partners merge into them by size-weighted
  average, and sizes add. Σ size·x is unchanged, so the size-weighted mean of the tokens is too.
- **Proportional attention.** Later blocks get the key bias log(size) through the mask
  argument every attention member hands to SDPA (a float mask is added to the logits), so a
  token that stands for s identical tokens gets the attention those s tokens would get together.
- **Positions.** A merged token keeps the RoPE position of its B token (the one the others
  merge into). The stem's learned position embedding was added before any merge and is
  averaged with the rest of the state.
- **Outputs.** After the last block every stem token gets the state of the merged token it
  ended in (ToMe's unmerge), so the model still returns (B, T, C): MAE's decoder sees every
  visible patch, and the plain mean over patches (``mean_features``) is exactly the
  size-weighted mean of the merged tokens.
- **Schedule.** ``constant`` merges r from the first step; ``progressive`` (SimVLG) merges
  r(p) = min(r, floor(p·(r + 1))) at training progress p, so each of 0, 1, ..., r gets an equal
  share of training. Outside training (probes; ``progress=None``) the full r is merged.
- **FLOPs** (``merged_flops``): per stem token, Σ_l F_l(T_l)·T_l/T over the blocks, where F_l
  is the block's own per-token count at T_l = T - l·r tokens, plus the forward-only matching,
  2·|A|·|B|·d_model per merge, over T (no gradient flows through the argmax). ``progressive``
  counts the mean of that over r = 0..r, the shares it trains at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from thrifty.bounds import bounded
from thrifty.errors import UserError

KEY = "model.stem.merge"


@dataclass(kw_only=True)
class MergeConfig:
    r: int = bounded(0, ge=0)
    """Tokens merged per image after every block but the last (ToMe's r; 0: no merging)."""
    schedule: Literal["constant", "progressive"] = "constant"
    """constant: r from the first step; progressive (SimVLG): from 0 up to r with training
    progress, r at the end and outside training."""


def merge_rate(cfg: MergeConfig | None, progress: float | None) -> int:
    """Tokens merged per merge at training ``progress`` (None: outside training, the full r)."""
    if cfg is None or cfg.r == 0 or progress is None or cfg.schedule == "constant":
        return 0 if cfg is None else cfg.r
    return min(cfg.r, math.floor(max(progress, 0.0) * (cfg.r + 1)))


def check_rate(r: int, tokens: int, n_layers: int) -> None:
    """UserError unless every merge can take r tokens: merge k (before block k) sees
    T - (k-1)·r tokens and takes at most half of them, so n_layers·r <= T."""
    if n_layers > 1 and r * n_layers > tokens:
        raise UserError(
            f"{KEY}.r={r} merges more than {tokens} tokens allow over {n_layers - 1} merges "
            f"(each takes at most half of those left): use r <= {tokens // n_layers}"
        )


class Merged(NamedTuple):
    x: torch.Tensor
    """(B, T - r, C) the tokens after the merge: the kept A tokens, then every B token."""
    size: torch.Tensor
    """(B, T - r) how many stem tokens each stands for."""
    origin: torch.Tensor
    """(B, T - r) long: the place (before the merge) whose RoPE position each token keeps."""
    into: torch.Tensor
    """(B, T) long: the place (after the merge) each token before it went to."""


def bipartite_merge(x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: int) -> Merged:
    """Merge r tokens of each row of x (B, T, C) by ToMe's bipartite soft matching on the cosine
    similarity of ``metric`` (B, T, D); ``size`` (B, T) weighs the averages."""
    B, T, C = x.shape
    with torch.no_grad():  # the choice of pairs is discrete: no gradient flows through it
        m = F.normalize(metric, dim=-1)
        scores = m[:, ::2] @ m[:, 1::2].transpose(1, 2)  # (B, |A|, |B|)
        best, partner = scores.max(-1)  # (B, |A|): each a's most similar b
        order = best.sort(dim=-1, descending=True, stable=True).indices
        src, kept = order[:, :r], order[:, r:].sort(-1).values  # A places merged / kept
        dst = partner.gather(1, src)  # (B, r): the B place each merged a goes into
    n_a, n_b, n_kept = (T + 1) // 2, T // 2, (T + 1) // 2 - r
    xa, xb, sa, sb = x[:, ::2], x[:, 1::2], size[:, ::2], size[:, 1::2]
    channels = (-1, -1, C)
    weighted = (xb * sb[..., None]).scatter_add(
        1,
        dst[..., None].expand(channels),
        (xa * sa[..., None]).gather(1, src[..., None].expand(channels)),
    )
    size_b = sb.scatter_add(1, dst, sa.gather(1, src))
    merged_x = torch.cat(
        [xa.gather(1, kept[..., None].expand(channels)), weighted / size_b[..., None]], 1
    )
    merged_size = torch.cat([sa.gather(1, kept), size_b], 1)
    b_places = torch.arange(n_b, device=x.device).expand(B, -1)
    origin = torch.cat([2 * kept, 2 * b_places + 1], 1)
    into_a = torch.empty(B, n_a, dtype=torch.long, device=x.device)
    into_a.scatter_(1, kept, torch.arange(n_kept, device=x.device).expand(B, -1))
    into_a.scatter_(1, src, n_kept + dst)
    into = torch.empty(B, T, dtype=torch.long, device=x.device)
    into[:, ::2], into[:, 1::2] = into_a, n_kept + b_places
    return Merged(merged_x, merged_size, origin, into)


def rope_rows(cos: torch.Tensor, sin: torch.Tensor, B: int, T: int):
    """RoPE tables as rows to look up, (cos (N, hd), sin (N, hd), row of each token (B, T)):
    the (T, hd) tables themselves, or the per-row (B, 1, T, hd) ones ``keep`` makes, flattened.
    A lookup of whole rows is much cheaper than gathering the (B, 1, T, hd) tables."""
    if cos.dim() == 2:
        return cos, sin, torch.arange(T, device=cos.device).expand(B, -1)
    flat = torch.arange(B * T, device=cos.device).view(B, T)
    return cos.reshape(B * T, -1), sin.reshape(B * T, -1), flat


def merged_blocks(blocks, x: torch.Tensor, cos, sin, causal: bool, mask, r: int) -> torch.Tensor:
    """Run ``blocks`` on x (B, T, C), merging r tokens after each but the last, with
    proportional attention; returns the states spread back over the T stem tokens."""
    if causal or mask is not None:
        raise ValueError("token merging runs bidirectional attention over unpadded images")
    B, T, C = x.shape
    check_rate(r, T, len(blocks))
    cos_rows, sin_rows, rows = rope_rows(cos, sin, B, T)
    size = x.new_ones(B, T)
    where = torch.arange(T, device=x.device).expand(B, -1)  # stem token -> current place
    bias = None  # all sizes are 1 before the first merge: no bias, the plain first block
    for i, block in enumerate(blocks):
        if i > 0:
            merged = bipartite_merge(x, size, x, r)
            x, size = merged.x, merged.size
            where = merged.into.gather(1, where)
            rows = rows.gather(1, merged.origin)  # each token keeps its B token's position
            cos, sin = F.embedding(rows, cos_rows)[:, None], F.embedding(rows, sin_rows)[:, None]
            bias = size.log()[:, None, None, :].to(x.dtype)  # (B, 1, 1, T'): log(size) per key
        x = block(x, cos, sin, False, bias)
    return x.gather(1, where[..., None].expand(-1, -1, C))


def merged_flops(blocks, seq_len: int, cfg: MergeConfig, d_model: int) -> float:
    """Training FLOPs per stem token of ``blocks`` with merging (module docstring's formula)."""
    check_rate(cfg.r, seq_len, len(blocks))
    rates = [cfg.r] if cfg.schedule == "constant" else list(range(cfg.r + 1))
    total = 0.0
    for r in rates:
        for i, block in enumerate(blocks):
            tokens = seq_len - i * r
            total += block.flops_per_token(tokens) * tokens / seq_len
            if i > 0 and r > 0:  # the matching before this block, over the tokens before it
                before = tokens + r
                total += 2.0 * ((before + 1) // 2) * (before // 2) * d_model / seq_len
    return total / len(rates)
