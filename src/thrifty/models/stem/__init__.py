"""Input stem members; importing this package registers every member."""

from thrifty.models.stem import conv, grid, patches, tokens, transitions  # noqa: F401
from thrifty.models.stem.base import STEMS

__all__ = ["STEMS"]
