"""The LINEARS registry and ``make_linear``: the one place block linear layers are made.

Dense, low-rank, SLTrain and Monarch parameterizations swap in through this factory, so init,
FLOP counts and state-dict names stay honest without module surgery. A member is one file
registered with ``@LINEARS.register(name)``; it maps (..., d_in) -> (..., d_out) without bias
and provides:

- ``reset_parameters(std)``: its own init, such that the matrix it applies has entries of about
  ``std`` (the transformer passes its init std, already scaled for residual projections, and
  never re-initialises a member's parameters itself);
- ``dense_weight()``: the (d_out, d_in) matrix it applies, for export and reverse sparsification;
- ``macs_per_token()``: multiply-accumulates per input row of a forward pass (for FLOPs/MFU).

Every parameter of a member is weight-decayed, vectors included (SLTrain's sparse values are a
1-D tensor but part of a matrix).
"""

from __future__ import annotations

import torch
from torch import nn

from thrifty.registry import Registry

LINEARS = Registry("linear")


def make_linear(section: dict, d_in: int, d_out: int) -> nn.Module:
    """Build the LINEARS member named in ``section`` mapping d_in -> d_out (no bias)."""
    return LINEARS.build(section, d_in, d_out)


def is_linear_member(module: nn.Module) -> bool:
    return getattr(module, "registry_name", None) in LINEARS.names() and hasattr(
        module, "dense_weight"
    )


def matmul_params(module: nn.Module) -> int:
    """Multiply-accumulates per token of a linear layer (its weight count when dense)."""
    counter = getattr(module, "macs_per_token", None)
    return counter() if counter else sum(p.numel() for p in module.parameters())


def dense_weight(module: nn.Module) -> torch.Tensor:
    """The (d_out, d_in) matrix a LINEARS member applies (a plain ``nn.Linear``'s weight)."""
    return module.dense_weight() if hasattr(module, "dense_weight") else module.weight
