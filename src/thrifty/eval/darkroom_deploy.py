"""Deploying a DPT policy in fresh Dark Room tasks (Lee et al. 2023, arXiv 2306.14892,
section 5.2), against the random behaviour policy, an empirical baseline and the oracle.

- **Online**: ``episodes`` episodes in a row in each task, from an empty history. At every
  step the policy reads the query (the current cell) and every transition so far, across
  episodes, and *samples* its action (DPT's posterior-sampling-like exploration); the
  transition is appended. Once the history outgrows the n transitions the model was trained
  on, it reads the latest n. The return of each episode should rise as the goal is found.
- **Offline**: one fixed dataset of n transitions by the random policy per task; the policy
  acts with the argmax for one episode. Also the accuracy of the argmax at uniformly random
  query states after the first j transitions of that dataset.

Baselines: ``random`` (the behaviour policy); ``empirical``, which walks the shortest path to
the rewarded cell once the history holds one (the best rewarded state seen; rewards are 0
elsewhere) and acts randomly until then; ``oracle``, which knows the goal. Test tasks draw
goals from the valid split's pool (the held-out goals, when the dataset has them) with seeds
of their own, never the training streams; results give the mean, std and a 95% t-interval
over seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from thrifty.data.darkroom import (
    ACTIONS,
    DarkRoomSettings,
    darkroom_features,
    goal_pools,
    optimal_actions,
    random_histories,
    settings_of,
    start_cell,
    step,
)
from thrifty.errors import UserError
from thrifty.eval.bandit_deploy import load_dpt
from thrifty.objectives.dpt import action_logits

EVAL_STREAM = 1_000_033  # test tasks: default_rng([EVAL_STREAM, seed]), apart from training
FIELDS = ("states", "actions", "rewards", "next_states")
T975 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23)  # df 1..10
History = dict[str, torch.Tensor]  # FIELDS -> (B, t)
Choose = Callable[[History, np.ndarray], np.ndarray]  # (history, cells (B,)) -> actions (B,)


@dataclass
class Policy:
    """A trained DPT model with its action head."""

    model: torch.nn.Module
    head: torch.nn.Module
    settings: DarkRoomSettings
    run_dir: Path | None = None

    @torch.no_grad()
    def logits(self, query: np.ndarray, history: History) -> torch.Tensor:
        """(B, t + 1, 5) action logits at cells ``query`` (B,) after each prefix."""
        device = next(self.model.parameters()).device
        h = {k: v[:, -self.settings.context_len :] for k, v in history.items()}  # latest n
        fields = (h["states"], h["actions"], h["rewards"], h["next_states"])
        s = self.settings
        tokens = darkroom_features(torch.from_numpy(query), *fields, s.grid, s.features)
        return action_logits(self.model, self.head, tokens.to(device)).cpu()


def load_policy(run: str | Path, data: str | Path | None = None) -> Policy:
    """The DPT policy of a run (or checkpoint) folder; ``data``: the Dark Room dataset whose
    settings the test tasks follow (default: the run's data.path)."""
    loaded, head = load_dpt(run)
    settings = settings_of(data or loaded.cfg.data.path)
    if head.out_features != len(ACTIONS):
        raise UserError(f"{run}: its policy has {head.out_features} actions, not Dark Room's 5")
    return Policy(loaded.model, head, settings, loaded.run_dir)


def fresh_goals(settings: DarkRoomSettings, tasks: int, seed: int) -> np.ndarray:
    """(tasks,) goals of test tasks, from the valid pool (held-out goals, where there are)."""
    pool = goal_pools(settings)["valid"]
    return np.random.default_rng([EVAL_STREAM, seed]).choice(pool, tasks)


def rollout(
    choose: Choose,
    goals: np.ndarray,
    settings: DarkRoomSettings,
    episodes: int,
    context: History | None = None,
) -> np.ndarray:
    """(B, episodes) returns of ``choose`` acting in the tasks of ``goals``: online from an
    empty history that every transition joins, or offline from the fixed ``context``."""
    B, H, g = len(goals), settings.horizon, settings.grid
    online = context is None
    history = context or {k: torch.zeros(B, 0) for k in FIELDS}
    returns = np.zeros((B, episodes))
    for e in range(episodes):
        here = np.full(B, start_cell(settings))
        for _ in range(H):
            a = choose(history, here)
            there = step(here, a, g)
            r = (there == goals).astype(np.float32)
            returns[:, e] += r
            if online:
                new = {"states": here, "actions": a, "rewards": r, "next_states": there}
                history = {
                    k: torch.cat([history[k], torch.from_numpy(new[k]).float()[:, None]], 1)
                    for k in FIELDS
                }
            here = there
    return returns


def algorithms(
    policy: Policy | None, settings: DarkRoomSettings, goals: np.ndarray, seed: int, sample: bool
) -> dict[str, Choose]:
    """name -> ``choose``: DPT (when given; sampling or argmax), random, empirical, oracle."""
    g = np.random.default_rng([EVAL_STREAM, seed, 2, int(sample)])  # online, offline apart
    chosen: dict[str, Choose] = {}
    if policy is not None:
        torch_g = torch.Generator().manual_seed(seed)

        def dpt(history: History, here: np.ndarray) -> np.ndarray:
            logits = policy.logits(here, history)[:, -1]
            if not sample:
                return logits.argmax(-1).numpy()
            return torch.multinomial(torch.softmax(logits, -1), 1, generator=torch_g)[:, 0].numpy()

        chosen["dpt"] = dpt
    chosen["random"] = lambda history, here: g.integers(0, len(ACTIONS), len(here))
    chosen["empirical"] = empirical(settings, [seed, int(sample)])
    chosen["oracle"] = lambda history, here: optimal_actions(here, goals, settings.grid)
    return chosen


def empirical(settings: DarkRoomSettings, seed: list[int]) -> Choose:
    """Shortest path to the first rewarded cell of the history, random actions until one."""
    g = np.random.default_rng([EVAL_STREAM, 3, *seed])

    def choose(history: History, here: np.ndarray) -> np.ndarray:
        rewards = history["rewards"].numpy()
        explore = g.integers(0, len(ACTIONS), len(here))
        if rewards.shape[1] == 0:
            return explore
        seen = history["next_states"].numpy()[np.arange(len(here)), rewards.argmax(1)]
        toward = optimal_actions(here, seen.astype(np.int64), settings.grid)
        return np.where(rewards.max(1) > 0, toward, explore)

    return choose


def summary(per_seed: list) -> dict:
    """Mean, std and 95% t-interval half-width over seeds of per-seed values (lists)."""
    x = np.asarray(per_seed, dtype=float)  # (seeds, ...)
    k = len(x)
    t = T975[k - 2] if 2 <= k <= len(T975) + 1 else (2.04 if k <= 31 else 1.96)  # t, df = k - 1
    half = t * x.std(0, ddof=1) / np.sqrt(k) if k > 1 else np.zeros_like(x[0])
    return {
        "mean": np.round(x.mean(0), 4).tolist(),
        "std": np.round(x.std(0), 4).tolist(),
        "ci95": np.round(half, 4).tolist(),
        "per_seed": np.round(x, 4).tolist(),
    }


def offline_accuracy(
    policy: Policy | None, context: History, goals: np.ndarray, settings, sizes, seed: int
) -> dict[str, dict[int, float]]:
    """name -> size j -> accuracy of the action at uniformly random query cells after the
    first j transitions of ``context`` (DPT: argmax; empirical: its shortest path or random)."""
    rng = np.random.default_rng([EVAL_STREAM, seed, 4])
    query = rng.integers(0, settings.cells, len(goals))
    best = optimal_actions(query, goals, settings.grid)
    hits: dict[str, dict[int, float]] = {}
    if policy is not None:
        argmax = policy.logits(query, context).argmax(-1).numpy()  # (B, n + 1): every prefix
        hits["dpt"] = {j: float((argmax[:, j] == best).mean()) for j in sizes}
    walk = empirical(settings, [seed, 2])
    hits["empirical"] = {
        j: float((walk({k: v[:, :j] for k, v in context.items()}, query) == best).mean())
        for j in sizes
    }
    return hits


def evaluate(
    policy: Policy | None,
    settings: DarkRoomSettings,
    *,
    seeds: int = 3,
    tasks: int = 100,
    episodes: int | None = None,
) -> dict:
    """Online returns per episode, offline return and accuracy by dataset size, over seeds."""
    episodes = settings.episodes if episodes is None else episodes
    if seeds < 1 or tasks < 1 or episodes < 1:
        raise UserError(
            f"--seeds={seeds}, --tasks={tasks}, --episodes={episodes}: all must be >= 1"
        )
    n = settings.context_len
    sizes = sorted({0, settings.horizon // 2, settings.horizon, n // 2, n})
    online: dict[str, list] = {}
    offline: dict[str, list] = {}
    accuracy: dict[str, list] = {}
    for seed in range(seeds):
        goals = fresh_goals(settings, tasks, seed)
        for name, choose in algorithms(policy, settings, goals, seed, sample=True).items():
            returns = rollout(choose, goals, settings, episodes)
            online.setdefault(name, []).append(returns.mean(0))
        rng = np.random.default_rng([EVAL_STREAM, seed, 1])
        data = random_histories(rng, goals, settings)
        context = {k: torch.from_numpy(data[k].astype(np.float32)) for k in FIELDS}
        for name, choose in algorithms(policy, settings, goals, seed, sample=False).items():
            returns = rollout(choose, goals, settings, 1, context)
            offline.setdefault(name, []).append(float(returns.mean()))
        for name, by_size in offline_accuracy(
            policy, context, goals, settings, sizes, seed
        ).items():
            accuracy.setdefault(name, []).append([by_size[j] for j in sizes])
    return {
        "settings": {**vars(settings)},
        "goals": "held-out" if settings.holdout_goals else "all",
        "seeds": seeds,
        "tasks_per_seed": tasks,
        "episodes": episodes,
        "horizon": settings.horizon,
        "online": {name: summary(rows) for name, rows in online.items()},
        "offline": {name: summary(rows) for name, rows in offline.items()},
        "offline_accuracy": {
            name: dict(zip(map(str, sizes), summary(rows)["mean"], strict=True))
            for name, rows in accuracy.items()
        },
    }


def format_table(result: dict) -> str:
    """Markdown tables: online return per episode, offline return, offline accuracy."""
    E = result["episodes"]
    lines = [
        f"| online return ({result['seeds']} seeds × {result['tasks_per_seed']} tasks, "
        f"{result['goals']} goals), episode = | " + " | ".join(map(str, range(1, E + 1))) + " |",
        "|---|" + "---|" * E,
    ]
    for name, s in result["online"].items():
        cells = " | ".join(f"{m:.2f} ± {c:.2f}" for m, c in zip(s["mean"], s["ci95"], strict=True))
        lines.append(f"| {name} | {cells} |")
    lines += ["", "| offline (argmax, fixed random dataset) | return |", "|---|---|"]
    for name, s in result["offline"].items():
        lines.append(f"| {name} | {s['mean']:.2f} ± {s['ci95']:.2f} |")
    sizes = list(next(iter(result["offline_accuracy"].values())))
    lines += ["", "| offline accuracy, transitions j = | " + " | ".join(sizes) + " |"]
    lines.append("|---|" + "---|" * len(sizes))
    for name, by_size in result["offline_accuracy"].items():
        lines.append(f"| {name} | " + " | ".join(f"{by_size[j]:.3f}" for j in sizes) + " |")
    return "\n".join(lines)
