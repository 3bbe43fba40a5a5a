"""Replace structured linear layers by dense ones holding the same matrix.

Monarch's reverse sparsification (Dao et al., ICML 2022, arXiv 2204.00595): train with Monarch
layers for most of the run, then continue dense from each layer's dense matrix, which closes
most of the quality gap at little cost.
"""

from __future__ import annotations

import torch
from torch import nn

from thrifty.models.linear.dense import Dense


def densify(module: nn.Module, names: tuple[str, ...] = ("monarch",)) -> list[str]:
    """Swap, in place, every LINEARS member named in ``names`` for an equal ``Dense``.

    Returns the dotted names of the replaced submodules. The new weights are new parameters,
    so the caller rebuilds its optimizer (they start without optimizer state). ``module``
    itself is never replaced, only its submodules.
    """
    targets = [
        name
        for name, child in module.named_modules()
        if name and getattr(type(child), "registry_name", None) in names
    ]
    replaced = []
    for name in targets:
        if any(name.startswith(done + ".") for done in replaced):
            continue  # inside a layer that is already dense
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name)
        setattr(parent, attr, _dense_copy(getattr(parent, attr)))
        replaced.append(name)
    return replaced


def _dense_copy(layer: nn.Module) -> Dense:
    with torch.no_grad():
        weight = layer.dense_weight()  # (d_out, d_in)
        # Built on the meta device so that its throwaway init draws nothing from the global
        # RNG: densifying mid-run must not shift the random stream of the rest of training.
        with torch.device("meta"):
            dense = Dense(Dense.Config(), weight.shape[1], weight.shape[0])
        dense = dense.to_empty(device=weight.device).to(weight.dtype)
        dense.weight.copy_(weight)
    return dense
