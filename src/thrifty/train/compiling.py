"""``train.compile``: the whole model in ``torch.compile``, or each block compiled in place.

Regional compilation (``regional``) compiles the block's forward once and reuses the graph for
every block of the same kind, so start-up no longer grows with depth. On a 2-core CPU with an
empty inductor cache the first step of ``mini`` took 12.3 s instead of 17.7 s and of ``small``
15.1 s instead of 24.5 s, with no slower steps after (``benchmarks/compile_startup.py``,
BENCHMARKS.md). The stem, the final norm and the objective's head stay eager. Compiling in
place keeps the module tree and so the state-dict keys unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


def compiled(model: nn.Module, how: bool | Literal["regional"]) -> nn.Module:
    """The module the objective calls: ``model`` itself (eager or with its blocks compiled in
    place) or its ``torch.compile`` wrapper."""
    if how == "regional":
        for block in model.blocks:
            block.compile()
        return model
    return torch.compile(model) if how else model
