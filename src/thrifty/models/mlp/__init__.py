"""MLP slot members; importing this package registers every member."""

from thrifty.models.mlp import moe, swiglu  # noqa: F401
from thrifty.models.mlp.base import MLPS

__all__ = ["MLPS"]
