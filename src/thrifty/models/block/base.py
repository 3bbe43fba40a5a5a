"""The BLOCKS registry: how a block wires its attention and MLP slots (``model.block``).

A member is built as ``cls(cfg, model_cfg)``; it builds its attention from ``model.attention``
(``ATTENTIONS``) and its MLP from ``model.mlp`` (``MLPS``), names them ``attn`` and ``mlp``,
and provides ``forward(x, cos, sin, causal, mask, ids=None)``,
``reset_parameters(std, out_std)`` and ``flops_per_token(seq_len)``. An attention member with
``wants_ids = True`` (meta-attention) also gets the token ids (B, T), as ``ids=``; the others
never see them.
"""

from __future__ import annotations

from torch import nn

from thrifty.models.attention import ATTENTIONS
from thrifty.models.mlp import MLPS
from thrifty.registry import Registry

BLOCKS = Registry("block")


def build_slots(model) -> tuple[nn.Module, nn.Module]:
    """The (attention, mlp) members ``model.attention`` and ``model.mlp`` name."""
    return ATTENTIONS.build(model.attention, model), MLPS.build(model.mlp, model)


def attention_ids(attn: nn.Module, ids) -> dict:
    """The keyword arguments that hand ``ids`` to an attention member that wants them."""
    return {"ids": ids} if getattr(attn, "wants_ids", False) else {}
