"""Dense specialists' weights -> one mixture-of-experts model (BTX and BAM upcycling).

Branch-Train-MiX (Sukhbaatar et al. 2024) makes expert i of every MoE FFN from specialist i's
FFN and averages everything else; BAM (Zhang et al. 2024, ``papers/bam.md``) also makes soft
mixture-of-attention experts from the specialists' attention, either whole (``bam``: each
expert keeps its W_Q, W_K, W_V, W_O) or with keys and values shared (``bam-kv``: W_K and W_V
averaged, W_Q and W_O per expert). What is averaged (embeddings, norms, and btx's attention) is
the float64 mean of the specialists' tensors, so N identical specialists give their tensor
exactly. Routers are the only fresh weights: drawn as a new mixture's own init would draw them
at the given seed.

Key mapping, block prefix ``blocks.{l}.``, with E specialists:

- ``mlp.<p>`` -> ``mlp.experts.{i}.<p>`` (every method), plus a fresh ``mlp.router.weight``;
- ``attn.<p>`` -> ``attn.experts.{i}.<p>`` (bam), plus a fresh ``attn.router.weight``;
- bam-kv: dense ``attn.qkv.weight`` rows [:d] -> ``attn.experts.{i}.q.weight``, rows [d:]
  averaged -> ``attn.kv.weight``; ``attn.out.weight`` -> ``attn.experts.{i}.out.weight``.

With one specialist and top_k = 1, every method gives back the dense model's function: the one
FFN expert gets weight 1 and so does the one attention expert.
"""

from __future__ import annotations

import dataclasses
import re

import torch

from thrifty.config import ModelConfig
from thrifty.errors import UserError
from thrifty.models.attention import ATTENTIONS
from thrifty.models.mlp import MLPS
from thrifty.models.transformer import Transformer
from thrifty.registry import suggest

METHODS = ("btx", "bam", "bam-kv")
_SLOT = re.compile(r"^(blocks\.\d+)\.(attn|mlp)\.(.+)$")  # (block, slot, parameter)


def check_method(method: str) -> None:
    if method not in METHODS:
        raise UserError(
            f"unknown upcycling method {method!r}{suggest(method, list(METHODS))}; "
            f"choose from {', '.join(METHODS)}"
        )


def mixture_config(dense: ModelConfig, method: str, experts: int, top_k: int) -> ModelConfig:
    """The dense model section with its MLP (and, for bam, its attention) made a mixture of
    ``experts`` experts; block layout, sizes and linears stay as they are."""
    check_method(method)
    if not 1 <= top_k <= experts:
        raise UserError(
            f"top_k={top_k} (--top-k): must be between 1 and the number of experts, "
            f"{experts} (one per specialist)"
        )
    # the full resolved sections, so the written config shows the load-balance defaults
    moe = MLPS.config({"name": "moe", "experts": experts, "top_k": top_k}, "model.mlp")
    attention = dense.attention
    if method != "btx":
        if method == "bam-kv" and dense.linear_for("qkv").get("name") != "dense":
            raise UserError(
                "--method bam-kv splits and averages the dense qkv matrix; these runs' qkv "
                f"projection is {dense.linear_for('qkv')['name']!r} (use bam or btx)"
            )
        moa = {"name": "moa", "experts": experts, "share_kv": method == "bam-kv"}
        attention = {"name": "moa", **dataclasses.asdict(ATTENTIONS.config(moa, "model.attention"))}
    mlp = {"name": "moe", **dataclasses.asdict(moe)}
    return dataclasses.replace(dense, mlp=mlp, attention=attention)


def mean(tensors: list[torch.Tensor], key: str) -> torch.Tensor:
    """The specialists' average of one tensor (float64 sum, then the tensor's own dtype);
    integer tensors (e.g. a sparse support) must agree, since their mean means nothing."""
    first = tensors[0]
    if not first.is_floating_point():
        if any(not torch.equal(first, t) for t in tensors[1:]):
            raise UserError(f"cannot average tensor {key!r}: it holds integers that differ")
        return first.clone()
    total = torch.zeros_like(first, dtype=torch.float64)
    for t in tensors:
        total += t.double()
    return (total / len(tensors)).to(first.dtype)


def _common_keys(states: list[dict[str, torch.Tensor]], names: list[str]) -> list[str]:
    ref = states[0]
    for state, name in zip(states[1:], names[1:]):
        for key in sorted(ref.keys() | state.keys()):
            if key not in ref or key not in state:
                has, lacks = (names[0], name) if key in ref else (name, names[0])
                raise UserError(f"cannot upcycle: tensor {key!r} is in {has} but not in {lacks}")
            if ref[key].shape != state[key].shape:
                raise UserError(
                    f"cannot upcycle: tensor {key!r} has shape {tuple(ref[key].shape)} in "
                    f"{names[0]} but {tuple(state[key].shape)} in {name}"
                )
    return list(ref)


def mixture_weights(
    states: list[dict[str, torch.Tensor]], method: str, d_model: int, names: list[str]
) -> dict[str, torch.Tensor]:
    """Every tensor of the mixture but its routers, from the specialists' state dicts."""
    check_method(method)
    out: dict[str, torch.Tensor] = {}
    for key in _common_keys(states, names):
        tensors = [state[key] for state in states]
        match = _SLOT.match(key)
        slot = match.group(2) if match else None
        if slot == "mlp" or (slot == "attn" and method == "bam"):
            block, _, param = match.groups()
            for i, tensor in enumerate(tensors):
                out[f"{block}.{slot}.experts.{i}.{param}"] = tensor
        elif slot == "attn" and method == "bam-kv":
            block, _, param = match.groups()
            out.update(_shared_kv(f"{block}.attn", param, tensors, d_model))
        else:  # embeddings, norms, and btx's attention
            out[key] = mean(tensors, key)
    return out


def _shared_kv(
    prefix: str, param: str, tensors: list[torch.Tensor], d: int
) -> dict[str, torch.Tensor]:
    """BAM's KV sharing: per-expert queries and outputs, keys and values averaged."""
    if param == "qkv.weight":  # rows [q; k; v], each d_model wide
        kv = mean([t[d:] for t in tensors], f"{prefix}.qkv.weight[d:]")
        return {f"{prefix}.kv.weight": kv} | {
            f"{prefix}.experts.{i}.q.weight": t[:d] for i, t in enumerate(tensors)
        }
    if param == "out.weight":
        return {f"{prefix}.experts.{i}.out.weight": t for i, t in enumerate(tensors)}
    raise UserError(f"--method bam-kv cannot split attention tensor {prefix}.{param}")


def build_mixture(
    dense: ModelConfig,
    states: list[dict[str, torch.Tensor]],
    method: str,
    top_k: int,
    seed: int,
    names: list[str] | None = None,
) -> tuple[ModelConfig, Transformer]:
    """The mixture's model section and the model itself, its routers freshly drawn."""
    names = names or [f"specialist {i}" for i in range(len(states))]
    cfg = mixture_config(dense, method, len(states), top_k)
    weights = mixture_weights(states, method, cfg.d_model, names)
    # The mixture's own init at this seed draws the routers, so they start as a MoE trained
    # from scratch would; forking keeps the caller's random state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Transformer(cfg)
    routers = {k: v for k, v in model.state_dict().items() if k.endswith(".router.weight")}
    try:
        model.load_state_dict({**routers, **weights})  # strict: every tensor accounted for
    except RuntimeError as e:
        raise UserError(
            f"the specialists' weights do not map onto the {method} mixture: {e}"
        ) from None
    return cfg, model.eval()
