"""Routing pathways of a mixture-of-experts model: signals of generalisation from training data.

Li, Fan & Zhou 2025 ("Where to find grokking in LLM pretraining?", ``papers/grokking_pathways.md``)
watch the experts a sample is routed through, layer by layer. As a model moves from memorising
to generalising, pathways become shared across samples and smooth across layers. Two metrics,
on a fixed set of training samples:

- **pathway distance**: a sample's pathway is P(x) = [sorted S_1(x), SEP, ..., sorted S_L(x)],
  S_ℓ its top-k experts at MoE layer ℓ; the metric is the mean Levenshtein distance over all
  pairs of samples (lower: more shared).
- **pathway consistency**: e_ℓ(x) = Σ_{j ∈ S_ℓ(x)} w_ℓj(x) · u_ℓj with u_ℓj the router's row
  for expert j (it lives in the shared d_model space, so layers are comparable); the metric is
  the mean over samples of (1 / (L−1)) Σ_ℓ cos(e_ℓ, e_ℓ+1) (higher: smoother).

Per-token choices become one per sample by averaging the router's probabilities over the
sample's tokens and taking the top-k of that mean, with w renormalised over the k chosen (the
card's first option, kept fixed). The edit distance is a plain dynamic programme: pathways are
a few dozen symbols long, so a dependency would buy nothing.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

SEP = -1


def moe_layers(model: nn.Module) -> list[nn.Module]:
    """The model's mixture-of-experts layers, in order (members with a ``router``/``top_k``)."""
    return [
        m
        for m in model.modules()
        if isinstance(getattr(m, "router", None), nn.Linear) and hasattr(m, "top_k")
    ]


@torch.no_grad()
def router_probabilities(model: nn.Module, ids: torch.Tensor, causal: bool) -> list[torch.Tensor]:
    """Per MoE layer, the router's probabilities (N, T, E) on ``ids`` (N, T)."""
    captured: list[torch.Tensor] = []
    hooks = [
        layer.router.register_forward_hook(lambda _m, _i, out: captured.append(out.float()))
        for layer in moe_layers(model)
    ]
    try:
        model(ids, causal=causal)
    finally:
        for hook in hooks:
            hook.remove()
    return [logits.softmax(-1) for logits in captured]


def sample_routes(probs: list[torch.Tensor], top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's experts (N, L, k), ascending, and their renormalised weights (N, L, k)."""
    mean = torch.stack([p.mean(1) for p in probs], dim=1)  # (N, L, E)
    weights, experts = mean.topk(top_k, dim=-1)
    experts, order = experts.sort(dim=-1)
    weights = weights.gather(-1, order)
    return experts, weights / weights.sum(-1, keepdim=True)


def pathway(experts: torch.Tensor) -> list[int]:
    """P(x) of one sample from its experts (L, k): expert ids with SEP between layers."""
    symbols: list[int] = []
    for ell, layer in enumerate(experts.tolist()):
        symbols += ([SEP] if ell else []) + layer
    return symbols


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance: insertions, deletions and substitutions each cost 1."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def mean_pairwise_distance(experts: torch.Tensor) -> float:
    """Mean edit distance over all pairs of samples' pathways (experts: (N, L, k))."""
    paths = [pathway(e) for e in experts]
    pairs = list(itertools.combinations(paths, 2))
    return sum(edit_distance(a, b) for a, b in pairs) / len(pairs) if pairs else 0.0


def consistency(experts: torch.Tensor, weights: torch.Tensor, routers: list[torch.Tensor]) -> float:
    """Mean over samples of the cosine between consecutive layers' weighted expert embeddings;
    ``routers``: each MoE layer's router matrix (E, d_model)."""
    if len(routers) < 2:
        return 1.0  # one layer: nothing to be inconsistent with
    embeddings = torch.stack(
        [
            (weights[:, ell, :, None] * router.float()[experts[:, ell]]).sum(1)  # (N, d)
            for ell, router in enumerate(routers)
        ],
        dim=1,
    )  # (N, L, d)
    cos = F.cosine_similarity(embeddings[:, :-1], embeddings[:, 1:], dim=-1)  # (N, L-1)
    return cos.mean().item()


def pathway_metrics(model: nn.Module, ids: torch.Tensor, causal: bool) -> dict[str, float]:
    """{"pathway_distance", "pathway_consistency"} of ``ids`` (N, T) (empty without MoE layers)."""
    layers = moe_layers(model)
    if not layers:
        return {}
    was_training = model.training
    model.eval()
    try:
        probs = router_probabilities(model, ids, causal)
    finally:
        model.train(was_training)
    experts, weights = sample_routes(probs, layers[0].top_k)
    routers = [layer.router.weight.detach() for layer in layers]
    return {
        "pathway_distance": mean_pairwise_distance(experts),
        "pathway_consistency": consistency(experts, weights, routers),
    }
