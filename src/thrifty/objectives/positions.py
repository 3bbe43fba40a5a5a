"""The positions a (B, T) mask picks, as indices on the host and on the device.

An objective that supervises or resamples some positions (masked LM, ELECTRA's generator)
gathers them by index. A boolean mask on the device would make the host wait to learn how many
positions there are (the size of the result); a mask drawn on the host is counted there, and
its indices are copied to the device without a wait.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thrifty.transfer import to_device


@dataclass(frozen=True)
class Positions:
    """The true positions of a (B, T) mask: the mask on the device and its row-major flat
    indices on the host and on the device. From a mask drawn on the host the indices reach the
    device without a wait; of a mask the device computed, the host has to wait to learn them."""

    mask: torch.Tensor
    host: torch.Tensor
    device: torch.Tensor

    @classmethod
    def drawn(cls, mask: torch.Tensor, device: torch.device) -> Positions:
        """Of a (B, T) mask on the host: nothing is read back."""
        flat = mask.flatten().nonzero()[:, 0]
        return cls(to_device(mask, device), flat, to_device(flat, device))

    @classmethod
    def computed(cls, mask: torch.Tensor) -> Positions:
        """Of a (B, T) mask on the device: one wait, for how many there are and where."""
        flat = mask.flatten().nonzero()[:, 0]
        return cls(mask, flat.cpu(), flat)

    def __len__(self) -> int:
        return len(self.host)

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """(N, ...) entries of a (B, T, ...) tensor at the positions."""
        return t.flatten(0, 1).index_select(0, self.device)

    def put(self, t: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """A (B, T) tensor like ``t`` with the (N,) ``values`` at the positions (differentiable
        in ``values``)."""
        return t.flatten().index_copy(0, self.device, values.to(t.dtype)).view_as(t)
