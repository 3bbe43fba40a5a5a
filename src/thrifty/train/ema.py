"""An exponential moving average of the model's weights (GPT-BERT keeps one, decay 0.999).

After every optimizer step each floating-point tensor of the model's state becomes
``decay · average + (1 − decay) · weight``; other tensors (SLTrain's support indices) are
copied as they are, so the average loads into the same network. The average is checkpointed
as ``ema.safetensors`` beside ``model.safetensors`` (so resume is exact) and is read with
``thrifty eval --ema`` and ``thrifty export --ema``; training itself never reads it.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = model.state_dict()
        for name, average in self.average.items():
            if average.is_floating_point():
                average.lerp_(current[name], 1.0 - self.decay)
            else:
                average.copy_(current[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.average

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, average in self.average.items():
            average.copy_(state[name])
