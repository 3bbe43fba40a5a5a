"""``moe``: a mixture of SwiGLU experts with top-k token routing.

Each token's router softmax picks its ``top_k`` experts and mixes their outputs with the
(renormalised) router weights, as in the Switch Transformer (Fedus et al. 2022), Mixtral and
Branch-Train-MiX; only the chosen experts run, on the tokens gathered for them. Two auxiliary
losses keep the router healthy: Switch's load balance, E · Σ_i f_i · P_i, and ST-MoE's router
z-loss, the mean squared log-partition of the router logits (Zoph et al. 2022). BAM mixes such
experts with a soft mixture of attention (Zhang et al. 2024, ``papers/bam.md``).

Parameters (the keys dense checkpoints are upcycled into, ``experts.{i}`` being a SwiGLU):
``router.weight`` (E, d_model), ``experts.{i}.gate_up.*`` and ``experts.{i}.down.*``.

Capacity is counted per row (sequence), so a row's output never depends on the rows it is
batched with, and so not on how rows are split over processes. Padding is right-aligned and
earlier positions are served first, so pads are the first to be dropped.

Emitted while training (``thrifty.models.aux``): the terms ``moe_balance`` and ``moe_z``, summed
over MoE layers and logged with their weights (perfect balance in every layer logs
``balance_weight · n_layers``), and the metrics ``moe_load_max`` (the busiest expert's share of
assignments · E; 1.0 is balanced) and, with a capacity factor, ``moe_dropped`` (the share of
assignments dropped), averaged over layers; all of them over real tokens, not pads.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.losses import LossTerm
from thrifty.models import aux
from thrifty.models.linear.base import matmul_params
from thrifty.models.mlp.base import MLPS
from thrifty.models.mlp.swiglu import SwiGLU


@MLPS.register("moe")
class MixtureOfExperts(nn.Module):
    """Top-k routed SwiGLU experts.

    Pads are routed like any token (their outputs are never read) but left out of the
    auxiliary losses and metrics, which measure the routing of real tokens
    (``counts_real_tokens``: the backbone marks them, ``thrifty.models.aux.real_mask``).

    ``record_routes``: when set, every forward stores ``last_routes``, the (B, T, top_k) int64
    expert ids each token chose, sorted by router weight (descending) and detached, before any
    capacity drop; routing-pathway metrics read them (Li et al. 2025,
    ``papers/grokking_pathways.md``).
    """

    counts_real_tokens = True

    @dataclass(kw_only=True)
    class Config:
        experts: int = bounded(4, ge=1)
        """Number of SwiGLU experts."""
        top_k: int = bounded(2, ge=1)
        """Experts each token is sent to (at most `experts`)."""
        d_ff: int | None = bounded(None, ge=1)
        """Hidden width of each expert (None: the model's d_ff)."""
        capacity_factor: float | None = bounded(None, gt=0)
        """None: no token dropping; else each expert takes at most
        ceil(capacity_factor · T · top_k / experts) tokens per row, earlier positions first."""
        balance_weight: float = bounded(0.01, ge=0)
        """Weight of the Switch load-balancing loss."""
        z_weight: float = bounded(0.001, ge=0)
        """Weight of the ST-MoE router z-loss."""
        normalize_top_k: bool = True
        """Rescale the chosen experts' softmax weights to sum to 1."""

        def __post_init__(self) -> None:
            if self.top_k > self.experts:
                raise UserError(
                    f"model.mlp.top_k={self.top_k}: must be at most the number of experts "
                    f"(model.mlp.experts={self.experts})"
                )

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_experts, self.top_k = cfg.experts, cfg.top_k
        # A bias-free plain linear: routing is no block projection to reparameterise.
        self.router = nn.Linear(model.d_model, cfg.experts, bias=False)
        # Each expert is the dense member itself, so a dense checkpoint's gate_up / down copy in.
        expert_cfg = dataclasses.replace(model, d_ff=cfg.d_ff or model.d_ff)
        self.experts = nn.ModuleList(
            SwiGLU(SwiGLU.Config(), expert_cfg) for _ in range(cfg.experts)
        )
        self.record_routes = False
        self.last_routes: torch.Tensor | None = None

    def reset_parameters(self, std: float, out_std: float) -> None:
        nn.init.normal_(self.router.weight, 0.0, std)
        for expert in self.experts:
            expert.reset_parameters(std, out_std)

    def flops_per_token(self, seq_len: int) -> float:
        """Active training FLOPs: 6 · (router MACs + top_k · one expert's MACs)."""
        expert = self.experts[0]
        expert_macs = matmul_params(expert.gate_up) + matmul_params(expert.down)
        return 6.0 * (self.router.weight.numel() + self.top_k * expert_macs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # ST-MoE: route in fp32 even under autocast; softmax and z-loss are sensitive to it.
        with torch.autocast(x.device.type, enabled=False):
            logits = self.router(x.float())  # (B, T, E)
        probs = logits.softmax(dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)  # (B, T, k), descending
        if self.cfg.normalize_top_k:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        kept = self._within_capacity(chosen)  # (B, T, k)
        y = self._dispatch(x.reshape(B * T, C), chosen, weights, kept).view(B, T, C)
        if self.record_routes:
            self.last_routes = chosen.detach()
        if aux.collecting():
            self._emit_aux(logits, probs, chosen, kept)
        return y

    def _within_capacity(self, chosen: torch.Tensor) -> torch.Tensor:
        """(B, T, k) bool: the assignment fits its expert's per-row capacity."""
        if self.cfg.capacity_factor is None:
            return torch.ones_like(chosen, dtype=torch.bool)
        T = chosen.shape[1]
        capacity = math.ceil(self.cfg.capacity_factor * T * self.top_k / self.n_experts)
        # A token picks an expert at most once, so its place in that expert's queue of the row
        # is the number of tokens up to and including it that picked the same expert.
        # compared with the expert ids: F.one_hot reads the ids' range back to check it
        experts = torch.arange(self.n_experts, device=chosen.device)
        picked = (chosen[..., None] == experts).sum(dim=2)  # (B, T, E)
        place = picked.cumsum(dim=1).gather(2, chosen)  # (B, T, k)
        return place <= capacity

    def _dispatch(
        self, x: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor, kept: torch.Tensor
    ) -> torch.Tensor:
        """Σ over kept assignments of weight · expert(token), each expert on its tokens only."""
        N, k, E = x.shape[0], self.top_k, self.n_experts
        token = torch.arange(N, device=x.device).repeat_interleave(k)  # (N·k,)
        # Dropped assignments form a last group that no expert runs (filtering them out by
        # the mask instead would size a tensor by a count: one more wait for the device).
        expert_of = torch.where(kept.reshape(-1), chosen.reshape(-1), E)
        # Group assignments by expert; stable, so each expert sees its tokens in order.
        order = expert_of.argsort(stable=True)
        token, weight = token[order], weights.reshape(-1)[order]
        # the group sizes: the one read of the device per layer, as splitting needs them
        sizes = torch.bincount(expert_of, minlength=E + 1).tolist()
        out = torch.zeros_like(x)  # index_add_ is deterministic on CPU (on CUDA: atomics)
        # zip stops at the last expert, before the dropped group
        for expert, tokens, w in zip(self.experts, token.split(sizes), weight.split(sizes)):
            if tokens.numel():
                h = expert(x.index_select(0, tokens))  # (n_e, C)
                out.index_add_(0, tokens, (h * w[:, None]).to(out.dtype))
        return out

    def _emit_aux(
        self, logits: torch.Tensor, probs: torch.Tensor, chosen: torch.Tensor, kept: torch.Tensor
    ) -> None:
        """Load balance and z-loss as global-batch terms over real tokens, and the metrics."""
        E = self.n_experts
        real = aux.real_mask(logits.shape[:2])
        if real is None:
            real = torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device)
        weight = real[..., None].to(probs.dtype)  # (B, T, 1)
        # f_i counts the router's choices (before capacity drops) over the global batch; one
        # collective carries the per-expert counts and the number dropped.
        real_k = real[..., None].expand_as(chosen)
        local = torch.cat(
            [
                torch.bincount(chosen.reshape(-1), real_k.reshape(-1).double(), minlength=E),
                (~kept & real_k).sum().reshape(1).double(),
            ]
        )
        counts = aux.all_sum(local)
        assigned = counts[:E].sum()
        share = (counts[:E] / assigned.clamp(min=1)).float()  # f_i, detached by construction
        count = real.sum().to(probs.dtype)
        # weight · total / global tokens = E · Σ_i f_i · P_i once totals are summed over ranks
        balance = E * (share * (probs * weight).sum(dim=(0, 1))).sum()
        aux.emit("moe_balance", LossTerm(balance, count, self.cfg.balance_weight))
        z = (torch.logsumexp(logits, dim=-1).pow(2) * weight[..., 0]).sum()
        # kept on the device, read when the loop logs
        metrics = {"moe_load_max": share.max() * E}
        if self.cfg.capacity_factor is not None:
            metrics["moe_dropped"] = (counts[E] / assigned.clamp(min=1)).float()
        aux.emit("moe_z", LossTerm(z, count, self.cfg.z_weight), metrics)
