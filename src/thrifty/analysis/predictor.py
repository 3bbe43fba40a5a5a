"""FBNetV3's accuracy predictor (Dai et al. 2021): an MLP over a candidate's encoding,
pretrained on free architecture statistics, then fine-tuned on measured runs.

Pretraining regresses the proxies (log parameters, log FLOPs per token, log training FLOPs)
of many candidates that are never trained; fine-tuning keeps the trunk and fits a new scalar
head (then the whole net) to the measured metric, standardised. The claim to check is that
the pretrained trunk ranks candidates better from few measurements (``kendall_tau``).
Written here: the predictor is a few lines of torch, and it must train on CPU in seconds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Predictor(nn.Module):
    def __init__(self, inputs: int, outputs: int, width: int = 64) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.head = nn.Linear(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


def _fit(net: nn.Module, x: np.ndarray, y: np.ndarray, steps: int, lr: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    xs, ys = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    batch = min(len(xs), 256)
    for _ in range(steps):
        index = torch.randint(len(xs), (batch,), generator=generator)
        loss = nn.functional.mse_loss(net(xs[index]), ys[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _standardise(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, std = y.mean(0), y.std(0) + 1e-8
    return (y - mean) / std, mean, std


class MetricPredictor:
    """Predicts a run's metric from its encoding; ``pretrain`` first, optionally."""

    def __init__(self, inputs: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.net = Predictor(inputs, 1)
        self.seed = seed
        self.pretrained = False

    def pretrain(self, x: np.ndarray, proxies: np.ndarray, steps: int = 1500) -> None:
        target, _, _ = _standardise(np.asarray(proxies, dtype=np.float64))
        self.net.head = nn.Linear(self.net.head.in_features, target.shape[1])
        _fit(self.net, np.asarray(x), target, steps, 3e-3, self.seed)
        self.pretrained = True

    def fit(self, x: np.ndarray, metric: np.ndarray, steps: int = 600) -> None:
        """Fine-tune on measured (encoding, metric) pairs: a new scalar head, whole net."""
        torch.manual_seed(self.seed + 1)
        self.net.head = nn.Linear(self.net.head.in_features, 1)
        target, self.mean, self.std = _standardise(np.asarray(metric, dtype=np.float64)[:, None])
        _fit(self.net, np.asarray(x), target, steps, 1e-3, self.seed + 1)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self.net(torch.tensor(np.asarray(x), dtype=torch.float32)).numpy()[:, 0]
        return out * self.std[0] + self.mean[0]


def kendall_tau(a, b) -> float:
    """Kendall's τ (τ-a: tied pairs count zero) of two equal-length sequences."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    if n < 2:
        return float("nan")
    i, j = np.triu_indices(n, 1)
    concordance = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return float(concordance.sum() / len(i))
