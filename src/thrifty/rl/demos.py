"""MiniGrid demonstrations -> a prepared trajectory dataset (``modality: demos``), for
behaviour cloning (Andres et al. 2023: IL pretraining and concurrent IL in MiniGrid).

Each episode plays one procedurally generated level (its seed is recorded) with the planner's
shortest plan (``thrifty.rl.planner``). ``noise`` makes the demonstrator sub-optimal: at each
step, with that probability, it takes a uniformly random action instead and then replans from
where it landed, so the recorded actions are what a noisy expert really did. ``levels`` caps
the distinct levels (episode i plays level i mod ``levels``), the paper's diversity axis;
``noise`` is its quality axis. Both, and what they produced (success rate, optimality = the
planner's length over the episode's length), are written to the manifest's ``quality`` record
and the ledger's source.

Training and validation levels are drawn apart from each other and below ``EVAL_LEVEL_BASE``;
success is measured on levels from that base up (``thrifty.rl.success``), never demonstrated.
A split is ``{split}.safetensors``: ``observations`` (N, OBS_WIDTH) uint8, ``actions`` (N,),
``episodes`` (N,) and per episode ``levels``, ``lengths``, ``returns``, ``optimal_lengths``.
The ledger counts transitions (one per step).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.atomic import new_folder
from thrifty.data.budget import Ledger
from thrifty.data.tokens import FORMAT, MANIFEST_FILE
from thrifty.errors import UserError
from thrifty.progress import progress_bar
from thrifty.rl.planner import SEARCHED_ACTIONS, shortest_plan

EVAL_LEVEL_BASE = 2**30  # level seeds >= this are for evaluation only
DEMO_MAX_EPOCHS = 2000  # passes over a demonstration; BC on tens of episodes needs many


@dataclass(frozen=True)
class DemoSettings:
    """Everything that decides the recorded demonstrations."""

    env: str = "MiniGrid-DoorKey-5x5-v0"
    episodes: int = 50
    valid_episodes: int = 10
    noise: float = 0.0
    """Chance per step that the demonstrator takes a random action (then replans)."""
    levels: int | None = None
    """Distinct training levels (None: one per episode)."""
    seed: int = 0

    def check(self) -> None:
        if self.episodes < 1:
            raise UserError(f"--episodes={self.episodes}: record at least 1 episode")
        if self.valid_episodes < 1:
            raise UserError(f"--valid-episodes={self.valid_episodes}: at least 1 is needed")
        if not 0.0 <= self.noise <= 1.0:
            raise UserError(f"--noise={self.noise}: a probability in [0, 1]")
        if self.levels is not None and not 1 <= self.levels <= self.episodes:
            raise UserError(f"--levels={self.levels}: between 1 and --episodes={self.episodes}")


def level_seeds(settings: DemoSettings) -> dict[str, list[int]]:
    """Distinct level seeds of the training and validation episodes, below EVAL_LEVEL_BASE."""
    s = settings
    distinct = s.levels or s.episodes
    rng = np.random.default_rng([s.seed, 7])
    drawn: list[int] = []
    while len(drawn) < distinct + s.valid_episodes:  # distinct draws, so splits never share
        for seed in rng.integers(0, EVAL_LEVEL_BASE, distinct + s.valid_episodes).tolist():
            if seed not in drawn:
                drawn.append(seed)
    train = drawn[:distinct]
    return {
        "train": [train[i % distinct] for i in range(s.episodes)],
        "valid": drawn[distinct : distinct + s.valid_episodes],
    }


def record_episode(env, level: int, noise: float, rng: np.random.Generator) -> dict[str, Any]:
    """Play ``level`` of ``env`` (flat-observation MiniGrid) with the noisy planner."""
    obs, _ = env.reset(seed=level)
    inner = env.unwrapped
    optimal = shortest_plan(inner)
    if optimal is None:
        raise UserError(f"level {level} of {inner.spec.id}: the planner found no solution")
    plan, observations, actions, ret = list(optimal), [], [], 0.0
    while True:
        if rng.uniform() < noise:
            action, plan = int(rng.choice(SEARCHED_ACTIONS)), None
        else:
            if plan is None:  # after a random action: replan from where it landed
                plan = shortest_plan(inner) or [int(rng.choice(SEARCHED_ACTIONS))]
            action = plan.pop(0)
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        ret += float(reward)
        if terminated or truncated:
            break
        if plan is not None and not plan:
            plan = None
    return {
        "observations": np.stack(observations).astype(np.uint8),
        "actions": np.asarray(actions, dtype=np.int64),
        "return": ret,
        "success": ret > 0,
        "optimal_length": len(optimal),
    }


def _record_split(env, levels: list[int], noise: float, rng, advance) -> dict:
    episodes = []
    for level in levels:
        episodes.append(record_episode(env, level, noise, rng))
        advance()
    lengths = [len(e["actions"]) for e in episodes]
    return {
        "observations": np.concatenate([e["observations"] for e in episodes]),
        "actions": np.concatenate([e["actions"] for e in episodes]),
        "episodes": np.repeat(np.arange(len(episodes)), lengths),
        "levels": np.asarray(levels, dtype=np.int64),
        "lengths": np.asarray(lengths, dtype=np.int64),
        "returns": np.asarray([e["return"] for e in episodes], dtype=np.float32),
        "optimal_lengths": np.asarray([e["optimal_length"] for e in episodes], dtype=np.int64),
    }


def quality(split: dict) -> dict[str, float]:
    """Success rate and mean optimality (planner length / episode length, 0 when failed)."""
    success = split["returns"] > 0
    optimality = np.where(success, split["optimal_lengths"] / split["lengths"], 0.0)
    return {
        "success_rate": float(success.mean()),
        "optimality": float(optimality.mean()),
        "mean_return": float(split["returns"].mean()),
        "distinct_levels": len(set(split["levels"].tolist())),
    }


def prepare_demos(
    out: str | Path, settings: DemoSettings, *, overwrite: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """Record the demonstrations of ``settings`` into the dataset folder ``out``; returns its
    manifest."""
    from safetensors.numpy import save_file

    from thrifty.rl.observations import make_env

    settings.check()
    out = Path(out)
    if (out / MANIFEST_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a prepared dataset is already here; pass --overwrite")
    env = make_env(settings.env)
    seeds = level_seeds(settings)
    rngs = dict(zip(seeds, np.random.default_rng([settings.seed, 11]).spawn(2), strict=True))
    total = sum(len(v) for v in seeds.values())
    with progress_bar("recording episodes", total, enabled=not quiet) as advance:
        splits = {s: _record_split(env, seeds[s], settings.noise, rngs[s], advance) for s in seeds}
    counts = {s: int(len(v["actions"])) for s, v in splits.items()}
    with new_folder(out) as tmp:
        digest, files = hashlib.sha256(), {}
        for split, tensors in splits.items():
            path = tmp / f"{split}.safetensors"
            save_file(tensors, str(path))
            data = path.read_bytes()
            digest.update(data)
            files[path.name] = hashlib.sha256(data).hexdigest()
        record = {s: quality(v) for s, v in splits.items()}
        total_transitions = sum(counts.values())
        source = {
            "path": f"synthetic:minigrid:{settings.env}",
            "synthetic": True,
            "generator": {**asdict(settings), "planner": "bfs-full-state"},
            "quality": record,
            "sha256": digest.hexdigest(),
            "files": files,
            "words_total": total_transitions,
            "words_used": total_transitions,
        }
        ledger = Ledger(
            budget_words=total_transitions,
            seed=settings.seed,
            sources=[source],
            prepared_words=counts,
            unit="transitions",
            max_epochs=DEMO_MAX_EPOCHS,
        )
        manifest = {
            "format": FORMAT,
            "modality": "demos",
            "env": settings.env,
            "actions": int(env.action_space.n),
            "settings": asdict(settings),
            "counts": counts,
            "episodes": {s: len(seeds[s]) for s in seeds},
            "quality": record,
            "ledger": ledger.to_dict(),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
