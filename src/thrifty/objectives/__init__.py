"""Training objectives; importing this package registers every member."""

from thrifty.objectives import (  # noqa: F401
    bc,
    causal_lm,
    classify,
    clip,
    dobf,
    dpt,
    electra,
    gpt_bert,
    mae,
    masked_lm,
    mcl,
    meta_tokens,
    multimae,
    replay,
    scalekd,
    slot_ae,
    softcon,
)
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output

__all__ = ["OBJECTIVES", "Batch", "Objective", "Output"]
