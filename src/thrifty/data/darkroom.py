"""Dark Room tasks -> a prepared dataset folder (``modality: darkroom``), for DPT.

The MDP task family of the Decision-Pretrained Transformer (Lee et al. 2023, arXiv 2306.14892,
section 5.2): a G×G grid (the paper's 10×10 by default) with one goal cell, unknown to the
agent and drawn uniformly. The agent starts at the **top-left corner** (row 0, column 0;
``start: centre`` puts it at (G // 2, G // 2) instead) and has 5 actions, up / down / left /
right / stay; a move into a wall leaves it where it is. Reward is 1 on every step whose next
state is the goal; an episode is ``horizon`` steps (G², the paper's 100 on 10×10, by default).

Pretraining data per task: an in-context dataset of n = ``episodes`` × ``horizon`` transitions
(s, a, r, s′) by the uniformly random behaviour policy, episodes from the start cell
concatenated; a query state s_q drawn uniformly from the grid; and the label a*, the optimal
action at s_q. Shortest paths in an open grid are the Manhattan ones, and ties are broken
deterministically: close the row gap first (up / down), then the column gap (left / right);
stay at the goal. ``holdout_goals`` K keeps K goal cells (drawn from the seed) out of
training: the valid split (and ``thrifty darkroom-eval``'s tasks) use only them, the paper's
test of generalisation to unseen goals.

Files and ledger as for bandits (``thrifty.data.task_folder``): ``{split}.safetensors`` holds
``goals`` (N,), ``states`` / ``actions`` / ``rewards`` / ``next_states`` (N, n), ``query`` and
``optimal`` (N,); the ledger counts transitions; every byte follows from ``seed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.data.bandits import transition_features
from thrifty.data.task_folder import (
    SPLITS,
    manifest_of,
    split_generators,
    task_counts,
    write_task_folder,
)
from thrifty.errors import UserError

ACTIONS = ("up", "down", "left", "right", "stay")
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]])  # (row, column) steps
STAY = 4
STARTS = ("corner", "centre")
FEATURES = ("coords", "onehot-coords")
HOLDOUT_STREAM = 7_919  # the held-out goals: default_rng([seed, HOLDOUT_STREAM])


@dataclass(frozen=True)
class DarkRoomSettings:
    """Everything that decides the generated tasks."""

    grid: int = 10
    """Side G of the room: G × G cells, each a possible goal."""
    horizon: int = 100
    """Steps per episode."""
    episodes: int = 4
    """Random-policy episodes in each in-context dataset: n = episodes × horizon transitions."""
    start: str = "corner"
    """Where every episode starts: corner (0, 0) or centre (G // 2, G // 2)."""
    holdout_goals: int = 0
    """Goal cells never used in training; the valid split and evaluation use only these."""
    features: str = "coords"
    """A state's token features: its (row, column), or the one-hot cell with them."""
    seed: int = 0

    @property
    def context_len(self) -> int:
        return self.episodes * self.horizon

    @property
    def cells(self) -> int:
        return self.grid * self.grid

    @property
    def state_dim(self) -> int:
        return 2 + (self.cells if self.features == "onehot-coords" else 0)

    def check(self) -> None:
        """A UserError naming the first setting a Dark Room task cannot take."""
        if self.grid < 2:
            raise UserError(f"--grid={self.grid}: the room needs at least 2 × 2 cells")
        if self.horizon < 1:
            raise UserError(f"--horizon={self.horizon}: an episode needs at least 1 step")
        if self.episodes < 1:
            raise UserError(f"--episodes={self.episodes}: the context needs at least 1 episode")
        if self.start not in STARTS:
            raise UserError(f"--start={self.start!r}: choose from {', '.join(STARTS)}")
        if self.features not in FEATURES:
            raise UserError(f"--features={self.features!r}: choose from {', '.join(FEATURES)}")
        if not 0 <= self.holdout_goals < self.cells:
            raise UserError(
                f"--holdout-goals={self.holdout_goals}: hold out 0 to {self.cells - 1} of the "
                f"{self.cells} goal cells (training needs at least one)"
            )


def start_cell(settings: DarkRoomSettings) -> int:
    g = settings.grid
    return 0 if settings.start == "corner" else (g // 2) * g + g // 2


def step(states: np.ndarray, actions: np.ndarray, grid: int) -> np.ndarray:
    """Next cells after ``actions`` from cells ``states`` (same shapes); walls stop a move."""
    rows = np.clip(states // grid + MOVES[actions, 0], 0, grid - 1)
    cols = np.clip(states % grid + MOVES[actions, 1], 0, grid - 1)
    return rows * grid + cols


def optimal_actions(states: np.ndarray, goals: np.ndarray, grid: int) -> np.ndarray:
    """The optimal action from each cell toward its goal: rows first, then columns, stay at
    the goal (the deterministic tie-break of the labels)."""
    dr = goals // grid - states // grid
    dc = goals % grid - states % grid
    by_col = np.where(dc < 0, 2, np.where(dc > 0, 3, STAY))
    return np.where(dr < 0, 0, np.where(dr > 0, 1, by_col))


def distances(states: np.ndarray, goals: np.ndarray, grid: int) -> np.ndarray:
    """Shortest-path steps from each cell to its goal (Manhattan: the room has no walls)."""
    return np.abs(goals // grid - states // grid) + np.abs(goals % grid - states % grid)


def goal_pools(settings: DarkRoomSettings) -> dict[str, np.ndarray]:
    """split -> the goal cells its tasks draw from; with held-out goals, valid gets only them."""
    cells = np.arange(settings.cells)
    if settings.holdout_goals == 0:
        return {"train": cells, "valid": cells}
    order = np.random.default_rng([settings.seed, HOLDOUT_STREAM]).permutation(settings.cells)
    held = np.sort(order[: settings.holdout_goals])
    return {"train": np.setdiff1d(cells, held), "valid": held}


def random_histories(
    rng: np.random.Generator, goals: np.ndarray, settings: DarkRoomSettings
) -> dict[str, np.ndarray]:
    """Per task, ``episodes`` uniformly random episodes from the start cell, concatenated:
    states, actions, rewards, next_states, each (N, episodes × horizon)."""
    N, E, H = len(goals), settings.episodes, settings.horizon
    actions = rng.integers(0, len(ACTIONS), (N, E, H))
    states = np.empty((N, E, H), dtype=np.int64)
    here = np.full((N, E), start_cell(settings))
    for t in range(H):
        states[:, :, t] = here
        here = step(here, actions[:, :, t], settings.grid)
    nexts = np.concatenate([states[:, :, 1:], here[:, :, None]], 2)
    rewards = (nexts == goals[:, None, None]).astype(np.float32)
    return {
        "states": states.reshape(N, -1).astype(np.int16),
        "actions": actions.reshape(N, -1).astype(np.uint8),
        "rewards": rewards.reshape(N, -1),
        "next_states": nexts.reshape(N, -1).astype(np.int16),
    }


def generate(
    settings: DarkRoomSettings, tasks: int, rng: np.random.Generator, pool: np.ndarray
) -> dict[str, np.ndarray]:
    """``tasks`` Dark Room tasks with goals from ``pool``: random-policy contexts, query
    states and their optimal actions (numpy arrays)."""
    goals = rng.choice(pool, tasks)
    data = random_histories(rng, goals, settings)
    query = rng.integers(0, settings.cells, tasks)
    optimal = optimal_actions(query, goals, settings.grid)
    return {"goals": goals, **data, "query": query, "optimal": optimal}


def state_features(states: torch.Tensor, grid: int, features: str) -> torch.Tensor:
    """(..., state_dim): the one-hot cell (``onehot-coords`` only), then its (row, column)
    scaled to [0, 1]. Coordinates give directions a shared form, which is how a goal never
    seen in training can be reached; with the one-hot too, the model memorises the training
    goals instead (5×5, 5 goals held out, 1,500 steps: valid accuracy with the full context
    0.77 against 0.91 with coordinates alone), so coordinates are the default."""
    states = states.long()
    coords = torch.stack([states // grid, states % grid], -1).float() / (grid - 1)
    if features == "coords":
        return coords
    one_hot = torch.nn.functional.one_hot(states, grid * grid).float()
    return torch.cat([one_hot, coords], -1)


def darkroom_features(
    query: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    next_states: torch.Tensor,
    grid: int,
    features: str = "coords",
) -> torch.Tensor:
    """(B, n + 1, 5 + 2 + 2 state_dim) ``transitions`` stem tokens: the bandit layout (one-hot
    action, reward, query flag; the query token first) with the features of s then s′ before
    the flag. The query token carries s_q as its s and nothing else."""
    base = transition_features(actions.long(), rewards, len(ACTIONS))  # (B, n + 1, 7)
    B, n = states.shape
    width = state_features(query[:1], grid, features).shape[-1]
    here = torch.zeros(B, n + 1, width)
    here[:, 0] = state_features(query, grid, features)
    here[:, 1:] = state_features(states, grid, features)
    there = torch.zeros(B, n + 1, width)
    there[:, 1:] = state_features(next_states, grid, features)
    return torch.cat([base[..., :-1], here, there, base[..., -1:]], -1)


def prepare_darkroom(
    out: str | Path,
    settings: DarkRoomSettings,
    *,
    tasks: int,
    valid_tasks: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``tasks`` training and ``valid_tasks`` (default a tenth, at least 1) validation
    tasks of ``settings`` to the dataset folder ``out``; returns its manifest."""
    settings.check()
    counts = task_counts(out, tasks, valid_tasks, overwrite)
    pools = goal_pools(settings)
    splits = {
        split: generate(settings, counts[split], rng, pools[split])
        for split, rng in split_generators(settings.seed).items()
    }
    n = settings.context_len
    return write_task_folder(
        out,
        modality="darkroom",
        source="synthetic:darkroom",
        settings=asdict(settings),
        seed=settings.seed,
        splits=splits,
        transitions={split: counts[split] * n for split in SPLITS},
        fields={
            "arms": len(ACTIONS),
            "state_dim": settings.state_dim,
            "features": settings.features,
            "grid": settings.grid,
            "context_len": n,
            "valid_goals": pools["valid"].tolist() if settings.holdout_goals else "all",
        },
    )


def settings_of(path: str | Path) -> DarkRoomSettings:
    """The generator settings of a prepared Dark Room dataset."""
    return DarkRoomSettings(**manifest_of(path, "darkroom")["settings"])
