"""Training objectives; importing this package registers every member."""

from thrifty.objectives import causal_lm, gpt_bert, masked_lm  # noqa: F401
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output

__all__ = ["OBJECTIVES", "Batch", "Objective", "Output"]
