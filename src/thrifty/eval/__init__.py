"""Zero-shot evaluation: sequence scoring backends and BLiMP-style minimal-pair tasks."""

from thrifty.eval.minimal_pairs import (
    evaluate_minimal_pairs,
    evaluate_pairs,
    format_table,
    read_pairs,
)
from thrifty.eval.scoring import (
    BACKENDS,
    VARIANTS,
    score_continuations,
    score_packed,
    score_sentences,
)

__all__ = [
    "BACKENDS",
    "VARIANTS",
    "evaluate_minimal_pairs",
    "evaluate_pairs",
    "format_table",
    "read_pairs",
    "score_continuations",
    "score_packed",
    "score_sentences",
]
