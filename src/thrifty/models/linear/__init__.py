"""Linear-layer parameterizations; importing this package registers every member."""

from thrifty.models.linear import dense, lowrank, monarch, sltrain  # noqa: F401
from thrifty.models.linear.base import LINEARS, make_linear

__all__ = ["LINEARS", "make_linear"]
