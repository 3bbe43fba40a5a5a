"""Success rate of a policy on MiniGrid levels no demonstration and no other evaluation used.

Levels are seeds ``EVAL_LEVEL_BASE + i`` for i < ``episodes``: the same levels at every
evaluation of every arm, so curves compare like with like and differences are paired. The
episodes run side by side (one batched forward per step for all unfinished ones). Actions are
sampled from the policy with a generator seeded by ``seed`` (the stochastic policy PPO
trains; an argmax policy can loop forever in a partially observed room), or the argmax with
``greedy``. Evaluation steps are measurement, not learning, and are not charged.
"""

from __future__ import annotations

import numpy as np
import torch

from thrifty.rl.demos import EVAL_LEVEL_BASE
from thrifty.rl.observations import make_env


def success_rate(
    logits_of, env_id: str, episodes: int, *, seed: int = 0, greedy: bool = False
) -> dict[str, float]:
    """``{"success_rate", "mean_return", "mean_length"}`` of the policy whose action logits for
    flat observations (B, OBS_WIDTH) float are ``logits_of(obs)``, over ``episodes`` levels."""
    return success_over(logits_of, lambda: make_env(env_id), episodes, seed=seed, greedy=greedy)


@torch.no_grad()
def success_over(
    logits_of, make, episodes: int, *, seed: int = 0, greedy: bool = False
) -> dict[str, float]:
    """``success_rate`` for environments of any observation: ``make()`` builds one, and
    ``logits_of`` reads a batch of its observations (frames for PPO on pixels)."""
    envs = [make() for _ in range(episodes)]
    obs = np.stack([env.reset(seed=EVAL_LEVEL_BASE + i)[0] for i, env in enumerate(envs)])
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    running = np.ones(episodes, dtype=bool)
    generator = torch.Generator().manual_seed(seed)
    while running.any():
        live = np.flatnonzero(running)
        logits = logits_of(torch.as_tensor(obs[live])).float()
        if greedy:
            actions = logits.argmax(-1)
        else:
            actions = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
        for i, action in zip(live, actions.tolist(), strict=True):
            step_obs, reward, terminated, truncated, _ = envs[i].step(action)
            obs[i], returns[i], lengths[i] = step_obs, returns[i] + reward, lengths[i] + 1
            running[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return {
        "success_rate": float((returns > 0).mean()),
        "mean_return": float(returns.mean()),
        "mean_length": float(lengths.mean()),
    }
