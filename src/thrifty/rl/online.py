"""What every online PPO run shares, whatever its observations (``thrifty.rl.ppo`` on symbolic
views, ``thrifty.rl.pixel_ppo`` on frames): the PPO settings and their checks, the agent,
training for a budget of environment steps with an evaluation curve, and the run folder.

The budget is exact: PPO collects whole rollouts of ``n_steps × n_envs`` steps, so a run takes
the most whole rollouts that fit in ``steps`` and never more. The policy is evaluated before
the first step and every ``eval_every`` steps (evaluation steps are measurement and are not
charged). The run folder is written atomically at the end: ``curve.jsonl`` (one row per
evaluation), ``result.json``, ``policy.safetensors`` (no pickles; SB3's own zip format pickles
its settings) and ``ledger.json``. A killed run leaves nothing behind and starts again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from thrifty.atomic import new_folder
from thrifty.data.budget import LEDGER_FILE, Ledger
from thrifty.errors import UserError

CURVE_FILE = "curve.jsonl"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class OnlineSettings:
    env: str = "MiniGrid-DoorKey-5x5-v0"
    steps: int = 50_000
    """Environment-step budget of the online phase."""
    seed: int = 0
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

    def check_online(self) -> None:
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
        if self.eval_episodes < 1 or self.eval_every < 1:
            raise UserError("--eval-every and --eval-episodes must be at least 1")


def refuse_finished(out: Path, overwrite: bool) -> None:
    if (out / RESULT_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a finished PPO run is already here; pass --overwrite")


def build_agent(policy: str, envs, s: OnlineSettings, policy_kwargs: dict):
    """Stable-Baselines3's PPO with the settings' hyperparameters, on the CPU.

    Its logger writes nowhere: the curve is thrifty's, and SB3's default logger would leave
    an empty ``SB3-<time>`` folder in the system's temporary directory at every run."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    agent = PPO(
        policy,
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
        policy_kwargs=policy_kwargs,
        seed=s.seed,
        device="cpu",
        verbose=0,
    )
    agent.set_logger(Logger(folder=None, output_formats=[]))
    return agent


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


def learn_with_curve(
    agent, s: OnlineSettings, scores: Callable[[], dict]
) -> tuple[list[dict], float]:
    """Train ``agent`` for the whole rollouts within ``s.steps``, evaluating ``scores()`` (the
    policy in evaluation mode) before, every ``eval_every`` steps and at the end; returns the
    curve rows and the start time."""
    rows: list[dict] = []
    began = time.perf_counter()

    def evaluate(env_steps: int) -> dict:
        agent.policy.set_training_mode(False)
        result = scores()
        agent.policy.set_training_mode(True)
        return {"env_steps": int(env_steps), **result, "seconds": time.perf_counter() - began}

    rows.append(evaluate(0))
    budget = (s.steps // s.rollout()) * s.rollout()
    agent.learn(total_timesteps=budget, callback=evaluation_callback(s, evaluate, rows))
    if rows[-1]["env_steps"] != agent.num_timesteps:
        rows.append(evaluate(agent.num_timesteps))
    return rows, began


def write_run(out: Path, rows: list[dict], result: dict, agent, ledger: Ledger) -> None:
    """The run folder, atomically: curve, result, the policy's weights and the ledger."""
    from safetensors.torch import save_model

    with new_folder(out) as tmp:
        (tmp / CURVE_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
        save_model(agent.policy, str(tmp / "policy.safetensors"))  # the actor's alias once
        ledger.save(tmp / LEDGER_FILE)
