"""Host-to-device copies that do not make the host wait.

A plain ``t.to("cuda")`` from ordinary host memory returns only once the copy is done, and the
copy waits for everything queued on the device before it: the host stalls, and cannot queue
the next kernels while the device runs. Through pinned memory with ``non_blocking`` the copy
is queued like a kernel instead. Batches go to the device this way, and so does what an
objective computes on the host for a step (masks, the positions they choose).
"""

from __future__ import annotations

import torch


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``t`` on ``device``; from the host to CUDA through pinned memory, without waiting."""
    device = torch.device(device)
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)
