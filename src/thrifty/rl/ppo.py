"""Online PPO in MiniGrid (Stable-Baselines3) from scratch, from a behaviour-cloned policy, or
with concurrent behaviour cloning — the three arms of Andres et al. 2023.

``run_ppo`` trains for a budget of environment steps, evaluates the success rate on held-out
levels (``thrifty.rl.success``) before the first step and every ``eval_every`` steps, and
writes one run folder, atomically at the end: ``curve.jsonl`` (one row per evaluation),
``result.json`` (settings and final numbers), ``policy.safetensors`` (the actor and critic,
no pickles; SB3's own zip format pickles its settings) and ``ledger.json``.

The budget is exact: PPO collects whole rollouts of ``n_steps × n_envs`` steps, so a run takes
the most whole rollouts that fit in ``steps`` and never more. The ledger charges the online
phase in environment steps and, in transitions, every offline transition any part of the
policy read: the cloned run's own ledger (its demonstrations, their passes) plus what
concurrent BC reads. A killed run leaves nothing behind; it starts again from the beginning.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from thrifty.atomic import new_folder
from thrifty.data.budget import LEDGER_FILE, Ledger
from thrifty.errors import UserError

CURVE_FILE = "curve.jsonl"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class PPOSettings:
    env: str = "MiniGrid-DoorKey-5x5-v0"
    steps: int = 50_000
    """Environment-step budget of the online phase."""
    seed: int = 0
    init: str | None = None
    """A ``bc`` run whose model and head start the actor (None: from scratch)."""
    config: str | None = None
    """A run config whose ``model`` section builds the network (needed without ``init``)."""
    bc_data: str | None = None
    """Demonstrations for concurrent behaviour cloning (None: plain PPO)."""
    bc_coef: float = 0.1
    bc_batch: int = 64
    n_envs: int = 8
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    lr: float = 2.5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    eval_every: int = 10_000
    eval_episodes: int = 64
    greedy: bool = False

    def rollout(self) -> int:
        return self.n_steps * self.n_envs

    def check(self) -> None:
        if self.init is None and self.config is None:
            raise UserError("pass --init RUN (a bc run) or --config CONFIG (the model to build)")
        if self.steps < self.rollout():
            raise UserError(
                f"--steps={self.steps}: below one rollout of --n-steps x --n-envs = "
                f"{self.rollout()} environment steps"
            )
        if self.rollout() % self.batch_size:
            raise UserError(
                f"--batch-size={self.batch_size} must divide a rollout of --n-steps x --n-envs "
                f"= {self.rollout()} steps"
            )
        if self.bc_data is not None and not self.bc_coef > 0:
            raise UserError(f"--bc-coef={self.bc_coef}: concurrent BC needs a positive weight")
        if self.eval_episodes < 1 or self.eval_every < 1:
            raise UserError("--eval-every and --eval-episodes must be at least 1")


def model_config(settings: PPOSettings):
    """The network's ModelConfig: the cloned run's, or the ``model`` section of ``config``."""
    from thrifty.config import load_config
    from thrifty.runs import read_config, resolve_checkpoint

    if settings.init is not None:
        return read_config(resolve_checkpoint(settings.init)).model
    model = load_config(settings.config, []).model
    if dict(model.stem).get("name") != "grid":
        raise UserError(f"{settings.config}: model.stem must be grid for MiniGrid observations")
    return model


def offline_ledger(settings: PPOSettings, start: dict | None) -> Ledger:
    """What the policy read offline: the cloned run's ledger, or the concurrent demonstrations'
    manifest ledger, or nothing (scratch)."""
    from thrifty.data.tokens import load_manifest

    if start:
        ledger = Ledger.from_dict(start, f"{settings.init} ledger")
        if settings.bc_data is not None:
            demos = Ledger.from_dict(load_manifest(Path(settings.bc_data))["ledger"])
            if {s["sha256"] for s in demos.sources} != {s["sha256"] for s in ledger.sources}:
                raise UserError(
                    f"--bc-data={settings.bc_data}: concurrent BC must use the demonstrations "
                    f"the --init run was cloned from"
                )
        return ledger
    if settings.bc_data is not None:
        return Ledger.from_dict(load_manifest(Path(settings.bc_data))["ledger"])
    return Ledger(unit="transitions", budget_words=None, prepared_words={"train": 0, "valid": 0})


def evaluation_callback(settings, evaluate, rows: list[dict]):
    """An SB3 callback that appends ``evaluate(env_steps)`` to ``rows`` every
    ``settings.eval_every`` environment steps."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Evaluate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = settings.eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                rows.append(evaluate(self.num_timesteps))
                self.next_eval += settings.eval_every
            return True

    return Evaluate()


def run_ppo(out: str | Path, settings: PPOSettings, *, overwrite: bool = False) -> dict[str, Any]:
    """Train PPO as ``settings`` says and write the run folder ``out``; returns the result."""
    from safetensors.torch import save_model
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from thrifty.data.demo_source import load_split
    from thrifty.rl.concurrent_bc import WithBehaviourCloning
    from thrifty.rl.observations import make_env
    from thrifty.rl.policy import (
        action_logits,
        init_fresh_actor_head,
        load_cloned_policy,
        policy_kwargs,
    )
    from thrifty.rl.success import success_rate

    settings.check()
    out = Path(out)
    if (out / RESULT_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a finished PPO run is already here; pass --overwrite")
    make_env(settings.env).close()  # an unknown id fails here, in one line
    s = settings
    torch.manual_seed(s.seed)
    envs = make_vec_env(lambda: make_env(s.env), n_envs=s.n_envs, seed=s.seed)
    agent = PPO(
        "MlpPolicy",
        envs,
        n_steps=s.n_steps,
        batch_size=s.batch_size,
        n_epochs=s.n_epochs,
        learning_rate=s.lr,
        gamma=s.gamma,
        gae_lambda=s.gae_lambda,
        clip_range=s.clip_range,
        ent_coef=s.ent_coef,
        max_grad_norm=s.max_grad_norm,
        policy_kwargs=policy_kwargs(model_config(s), s.seed),
        seed=s.seed,
        device="cpu",
        verbose=0,
    )
    start = load_cloned_policy(agent.policy, s.init) if s.init else None
    if start is None:
        init_fresh_actor_head(agent.policy)
    ledger = offline_ledger(s, start)
    concurrent = None
    if s.bc_data is not None:
        demos = load_split(Path(s.bc_data), "train")
        concurrent = WithBehaviourCloning(
            agent.policy.optimizer,
            agent.policy,
            demos["observations"],
            demos["actions"],
            coef=s.bc_coef,
            batch_size=s.bc_batch,
            max_grad_norm=s.max_grad_norm,
            seed=s.seed,
        )
        agent.policy.optimizer = concurrent

    rows: list[dict] = []
    began = time.perf_counter()

    def evaluate(env_steps: int) -> dict:
        agent.policy.set_training_mode(False)
        scores = success_rate(
            lambda obs: action_logits(agent.policy, obs),
            s.env,
            s.eval_episodes,
            seed=s.seed,
            greedy=s.greedy,
        )
        agent.policy.set_training_mode(True)
        return {"env_steps": int(env_steps), **scores, "seconds": time.perf_counter() - began}

    rows.append(evaluate(0))
    budget = (s.steps // s.rollout()) * s.rollout()
    agent.learn(total_timesteps=budget, callback=evaluation_callback(s, evaluate, rows))
    if rows[-1]["env_steps"] != agent.num_timesteps:
        rows.append(evaluate(agent.num_timesteps))
    if concurrent is not None:
        ledger.words_seen += concurrent.transitions_read
    ledger.env_steps = {"env": s.env, "budget": s.steps, "used": int(agent.num_timesteps)}
    result = {
        "settings": asdict(s),
        "arm": arm_name(s),
        "env_steps": int(agent.num_timesteps),
        "first": rows[0],
        "final": rows[-1],
        "offline_transitions_read": ledger.words_seen,
        "seconds": time.perf_counter() - began,
    }
    with new_folder(out) as tmp:
        (tmp / CURVE_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
        save_model(agent.policy, str(tmp / "policy.safetensors"))  # the actor's alias once
        ledger.save(tmp / LEDGER_FILE)
    envs.close()
    return result


def arm_name(settings: PPOSettings) -> str:
    """scratch, bc-init, concurrent-bc or bc-init+concurrent."""
    if settings.init and settings.bc_data:
        return "bc-init+concurrent"
    return "bc-init" if settings.init else ("concurrent-bc" if settings.bc_data else "scratch")
