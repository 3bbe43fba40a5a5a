"""The LINEARS registry and ``make_linear``: the one place block linear layers are made.

Dense, low-rank, SLTrain and Monarch parameterizations swap in through this factory, so init,
FLOP counts and state-dict names stay honest without module surgery.
"""

from __future__ import annotations

from torch import nn

from thrifty.registry import Registry

LINEARS = Registry("linear")


def make_linear(section: dict, d_in: int, d_out: int) -> nn.Module:
    """Build the LINEARS member named in ``section`` mapping d_in -> d_out (no bias)."""
    return LINEARS.build(section, d_in, d_out)


def matmul_params(module: nn.Module) -> int:
    """Multiply-accumulates per token of a linear layer (its weight count when dense)."""
    counter = getattr(module, "macs_per_token", None)
    return counter() if counter else sum(p.numel() for p in module.parameters())
