"""Attention slot members; importing this package registers every member."""

from thrifty.models.attention import meta, mha, moa  # noqa: F401
from thrifty.models.attention.base import ATTENTIONS

__all__ = ["ATTENTIONS"]
