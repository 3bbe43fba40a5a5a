"""The MLPS registry: the channel-mixing slot of a block (``model.mlp``).

A member is built as ``cls(cfg, model_cfg)``, maps (B, T, C) -> (B, T, C) and provides
``reset_parameters(std, out_std)`` and ``flops_per_token(seq_len)`` like an attention member
(``thrifty.models.attention.base``). A member with auxiliary losses (a router's load balance)
hands them to ``thrifty.models.aux.emit`` during its forward pass.
"""

from __future__ import annotations

from thrifty.registry import Registry

MLPS = Registry("mlp")
