"""Window samplers; importing this package registers every member."""

from thrifty.data.samplers import uniform  # noqa: F401
from thrifty.data.samplers.base import SAMPLERS, Sampler

__all__ = ["SAMPLERS", "Sampler"]
