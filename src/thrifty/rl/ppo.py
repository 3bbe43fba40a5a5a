"""Online PPO in MiniGrid (Stable-Baselines3) from scratch, from a behaviour-cloned policy, or
with concurrent behaviour cloning — the three arms of Andres et al. 2023.

``run_ppo`` trains for a budget of environment steps and evaluates the success rate on
held-out levels (``thrifty.rl.success``), writing the run folder of ``thrifty.rl.online``
(the budget, the curve and the folder are shared with PPO on pixels). The ledger charges the
online phase in environment steps and, in transitions, every offline transition any part of
the policy read: the cloned run's own ledger (its demonstrations, their passes) plus what
concurrent BC reads.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from thrifty.data.budget import Ledger
from thrifty.errors import UserError
from thrifty.rl.online import (
    OnlineSettings,
    build_agent,
    learn_with_curve,
    refuse_finished,
    write_run,
)


@dataclass(frozen=True)
class PPOSettings(OnlineSettings):
    init: str | None = None
    """A ``bc`` run whose model and head start the actor (None: from scratch)."""
    config: str | None = None
    """A run config whose ``model`` section builds the network (needed without ``init``)."""
    bc_data: str | None = None
    """Demonstrations for concurrent behaviour cloning (None: plain PPO)."""
    bc_coef: float = 0.1
    bc_batch: int = 64

    def check(self) -> None:
        if self.init is None and self.config is None:
            raise UserError("pass --init RUN (a bc run) or --config CONFIG (the model to build)")
        self.check_online()
        if self.bc_data is not None and not self.bc_coef > 0:
            raise UserError(f"--bc-coef={self.bc_coef}: concurrent BC needs a positive weight")


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


def run_ppo(out: str | Path, settings: PPOSettings, *, overwrite: bool = False) -> dict[str, Any]:
    """Train PPO as ``settings`` says and write the run folder ``out``; returns the result."""
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
    refuse_finished(out, overwrite)
    make_env(settings.env).close()  # an unknown id fails here, in one line
    s = settings
    torch.manual_seed(s.seed)
    envs = make_vec_env(lambda: make_env(s.env), n_envs=s.n_envs, seed=s.seed)
    agent = build_agent("MlpPolicy", envs, s, policy_kwargs(model_config(s), s.seed))
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

    def scores() -> dict:
        return success_rate(
            lambda obs: action_logits(agent.policy, obs),
            s.env,
            s.eval_episodes,
            seed=s.seed,
            greedy=s.greedy,
        )

    rows, began = learn_with_curve(agent, s, scores)
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
    write_run(out, rows, result, agent, ledger)
    envs.close()
    return result


def arm_name(settings: PPOSettings) -> str:
    """scratch, bc-init, concurrent-bc or bc-init+concurrent."""
    if settings.init and settings.bc_data:
        return "bc-init+concurrent"
    return "bc-init" if settings.init else ("concurrent-bc" if settings.bc_data else "scratch")
