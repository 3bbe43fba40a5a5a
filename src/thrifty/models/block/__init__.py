"""Block layouts; importing this package registers every member."""

from thrifty.models.block import parallel, sequential  # noqa: F401
from thrifty.models.block.base import BLOCKS

__all__ = ["BLOCKS"]
