"""Multi-armed bandit tasks -> a prepared dataset folder (``modality: bandit``), for DPT.

The pretraining data of the Decision-Pretrained Transformer (Lee et al. 2023, arXiv
2306.14892): many tasks drawn from a prior, each with an in-context dataset of ``horizon``
pulls by a behaviour policy and the label DPT learns, the optimal arm. A task is a K-armed
bandit whose arm means are drawn from U[0, 1]; a pull of arm a returns its mean plus Gaussian
noise (``sigma``) or a Bernoulli draw with that mean. Behaviour policies:

- ``uniform``: every pull is a uniformly random arm (the paper's small-scale check);
- ``mix``: each task draws its own action distribution, a Dirichlet(1) vector mixed with a point
  mass on one random arm by a weight drawn from U[0, 1], so datasets range from near-uniform to
  near-single-arm (the paper varies dataset quality so; its exact recipe is not reproduced).

A prepared folder holds ``{split}.safetensors`` (``means`` (N, K), ``actions`` (N, n),
``rewards`` (N, n), ``optimal`` (N,)) for ``train`` and ``valid``, never pickles, plus
``manifest.json`` with the generator settings and a ledger counted in transitions
(``thrifty.data.task_folder``, shared with Dark Room). Everything follows from ``seed``, so
the same settings always write the same files (their sha256 is in the ledger's one
``synthetic`` source).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.data.task_folder import (
    SPLITS,
    manifest_of,
    split_generators,
    task_counts,
    write_task_folder,
)
from thrifty.errors import UserError

NOISES = ("gaussian", "bernoulli")
BEHAVIOURS = ("uniform", "mix")


@dataclass(frozen=True)
class BanditSettings:
    """Everything that decides the generated tasks."""

    arms: int = 5
    horizon: int = 50
    """Pulls in each task's in-context dataset (DPT's n); an item is n transitions + a query."""
    noise: str = "gaussian"
    sigma: float = 0.3
    """Std of the Gaussian reward noise (unused for Bernoulli rewards)."""
    behaviour: str = "uniform"
    seed: int = 0

    def check(self) -> None:
        """A UserError naming the first setting a bandit task cannot take."""
        if self.arms < 2:
            raise UserError(f"--arms={self.arms}: a bandit needs at least 2 arms")
        if self.horizon < 1:
            raise UserError(f"--horizon={self.horizon}: the context needs at least 1 pull")
        if self.noise not in NOISES:
            raise UserError(f"--noise={self.noise!r}: choose from {', '.join(NOISES)}")
        if self.behaviour not in BEHAVIOURS:
            raise UserError(f"--behaviour={self.behaviour!r}: choose from {', '.join(BEHAVIOURS)}")
        if not self.sigma > 0:
            raise UserError(f"--sigma={self.sigma}: the reward noise must be positive")


def sample_means(rng: np.random.Generator, tasks: int, arms: int) -> np.ndarray:
    """(tasks, arms) arm means from the prior U[0, 1]."""
    return rng.uniform(0.0, 1.0, (tasks, arms)).astype(np.float32)


def pull(
    rng: np.random.Generator, means: np.ndarray, actions: np.ndarray, noise: str, sigma: float
) -> np.ndarray:
    """Rewards of pulling ``actions`` (N, ...) in tasks with ``means`` (N, K)."""
    mu = np.take_along_axis(means, actions.reshape(len(means), -1), 1).reshape(actions.shape)
    if noise == "bernoulli":
        return (rng.uniform(size=mu.shape) < mu).astype(np.float32)
    return (mu + sigma * rng.standard_normal(mu.shape)).astype(np.float32)


def behaviour_actions(
    rng: np.random.Generator, tasks: int, horizon: int, arms: int, behaviour: str
) -> np.ndarray:
    """(tasks, horizon) arms pulled by the behaviour policy."""
    if behaviour == "uniform":
        return rng.integers(0, arms, (tasks, horizon))
    probs = rng.dirichlet(np.ones(arms), tasks)
    weight = rng.uniform(size=(tasks, 1))
    probs = (1 - weight) * probs + weight * np.eye(arms)[rng.integers(0, arms, tasks)]
    cumulative = probs.cumsum(1)
    draws = rng.uniform(size=(tasks, horizon, 1))
    return np.minimum((draws > cumulative[:, None, :]).sum(-1), arms - 1)


def generate(settings: BanditSettings, tasks: int, rng: np.random.Generator) -> dict:
    """``tasks`` bandit tasks with their in-context datasets and optimal arms (numpy arrays)."""
    s = settings
    means = sample_means(rng, tasks, s.arms)
    actions = behaviour_actions(rng, tasks, s.horizon, s.arms, s.behaviour).astype(np.int64)
    rewards = pull(rng, means, actions, s.noise, s.sigma)
    return {"means": means, "actions": actions, "rewards": rewards, "optimal": means.argmax(1)}


def transition_features(actions: torch.Tensor, rewards: torch.Tensor, arms: int) -> torch.Tensor:
    """(B, n + 1, arms + 2) tokens of the ``transitions`` stem: a query token (flag 1, all else
    0) first, then one token per pull: one-hot arm, reward, flag 0. With the query first, the
    causal prefix of length j + 1 is the query with the first j pulls (DPT's D_{<=j})."""
    B, n = actions.shape
    tokens = torch.zeros(B, n + 1, arms + 2)
    tokens[:, 0, -1] = 1.0
    tokens[:, 1:, :arms] = torch.nn.functional.one_hot(actions.long(), arms).float()
    tokens[:, 1:, arms] = rewards.float()
    return tokens


def prepare_bandits(
    out: str | Path,
    settings: BanditSettings,
    *,
    tasks: int,
    valid_tasks: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``tasks`` training and ``valid_tasks`` (default a tenth, at least 1) validation
    tasks of ``settings`` to the dataset folder ``out``; returns its manifest."""
    settings.check()
    counts = task_counts(out, tasks, valid_tasks, overwrite)
    n = settings.horizon
    splits = {
        split: generate(settings, counts[split], rng)
        for split, rng in split_generators(settings.seed).items()
    }
    return write_task_folder(
        out,
        modality="bandit",
        source="synthetic:bandits",
        settings=asdict(settings),
        seed=settings.seed,
        splits=splits,
        transitions={split: counts[split] * n for split in SPLITS},
        fields={"arms": settings.arms, "context_len": n},
    )


def settings_of(path: str | Path) -> BanditSettings:
    """The generator settings of a prepared bandit dataset."""
    return BanditSettings(**manifest_of(path, "bandit")["settings"])
