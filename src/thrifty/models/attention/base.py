"""The ATTENTIONS registry: the token-mixing slot of a block (``model.attention``).

A member is built as ``cls(cfg, model_cfg)`` from its own ``Config`` and the model's, maps
(B, T, C) -> (B, T, C) given the RoPE tables, the attention mode and an optional key mask, and
provides:

- ``reset_parameters(std, out_std)``: its init; ``out_std`` for projections that write into
  the residual stream (GPT-2's scaled init);
- ``flops_per_token(seq_len)``: training FLOPs per token (forward + backward) of its matmuls
  and of the attention scores (PaLM's 6·N + 12·T·d rule per layer).

Projections are made with ``make_linear(model_cfg.linear_for(role), ...)`` so
``model.linear`` and ``model.projections`` reach them.
"""

from __future__ import annotations

from thrifty.registry import Registry

ATTENTIONS = Registry("attention")


def score_flops(seq_len: int, d_model: int) -> float:
    """Training FLOPs per token of q·k and attention·v over ``seq_len`` keys (PaLM, App. B)."""
    return 12.0 * seq_len * d_model
