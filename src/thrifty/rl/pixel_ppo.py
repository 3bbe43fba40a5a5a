"""PPO on MiniGrid frames with a frozen pretrained encoder or a CNN from scratch — the RL half
of the OCR-RL check (Yoon et al. 2023; ``papers/ocr_rl.md``; arms in ``thrifty.rl.slot_policy``).

``run_pixel_ppo`` is ``thrifty.rl.ppo.run_ppo`` for pixels: Stable-Baselines3's PPO for a
budget of environment steps (whole rollouts that fit, never more), the success rate and return
on held-out levels (seeds from ``EVAL_LEVEL_BASE``, the same for every arm) before the first
step and every ``eval_every`` steps, and one run folder written atomically at the end:
``curve.jsonl``, ``result.json``, ``policy.safetensors`` and ``ledger.json``. The ledger is
the frozen encoder's (the frames it was pretrained on, in images) with the online phase in
environment steps; a scratch CNN's is empty but for the online phase.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.atomic import new_folder
from thrifty.data.budget import LEDGER_FILE, Ledger
from thrifty.errors import UserError
from thrifty.rl.frames import DEFAULT_ENV, DEFAULT_SIZE
from thrifty.rl.ppo import CURVE_FILE, RESULT_FILE, evaluation_callback


@dataclass(frozen=True)
class PixelPPOSettings:
    arm: str = "slots"
    """slots (a slot_ae run, frozen), cnn (from scratch) or cnn-ae (a frozen autoencoder)."""
    encoder: str | None = None
    """The pretrained encoder: a slot_ae run for slots, a pretrain_cnn_ae folder for cnn-ae."""
    env: str = DEFAULT_ENV
    image_size: int | None = None
    """Frame side in pixels (None: the encoder's, or 28 for a scratch CNN)."""
    steps: int = 20_000
    """Environment-step budget of the online phase."""
    seed: int = 0
    n_envs: int = 8
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    features_dim: int = 64
    eval_every: int = 5_000
    eval_episodes: int = 64
    greedy: bool = False

    def rollout(self) -> int:
        return self.n_steps * self.n_envs

    def check(self) -> None:
        from thrifty.rl.slot_policy import ARMS

        if self.arm not in ARMS:
            raise UserError(f"--arm={self.arm!r}: choose one of {', '.join(ARMS)}")
        if self.arm == "cnn" and self.encoder is not None:
            raise UserError("--arm=cnn trains its CNN from scratch: drop --encoder")
        if self.arm != "cnn" and self.encoder is None:
            raise UserError(f"--arm={self.arm} needs --encoder (the pretrained encoder)")
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


def frame_side(s: PixelPPOSettings) -> int:
    """The frame side the run uses: the encoder's, which ``image_size`` may only repeat."""
    from thrifty.rl.slot_policy import frame_size

    pretrained = frame_size(s.arm, s.encoder)
    if pretrained is not None and s.image_size not in (None, pretrained):
        raise UserError(
            f"--image-size={s.image_size}: --encoder={s.encoder} was pretrained on "
            f"{pretrained}x{pretrained} frames"
        )
    return pretrained or s.image_size or DEFAULT_SIZE


@torch.no_grad()
def pixel_success_rate(
    policy, env_id: str, size: int, episodes: int, *, seed: int = 0, greedy: bool = False
) -> dict[str, float]:
    """``{"success_rate", "mean_return", "mean_length"}`` of SB3 ``policy`` on frames, over the
    evaluation levels ``EVAL_LEVEL_BASE + i`` (``thrifty.rl.success``, for pixels)."""
    from thrifty.rl.demos import EVAL_LEVEL_BASE
    from thrifty.rl.frames import make_pixel_env

    envs = [make_pixel_env(env_id, size) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=EVAL_LEVEL_BASE + i)[0] for i, env in enumerate(envs)])
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    running = np.ones(episodes, dtype=bool)
    generator = torch.Generator().manual_seed(seed)
    while running.any():
        live = np.flatnonzero(running)
        logits = policy.get_distribution(torch.as_tensor(obs[live])).distribution.logits
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


def run_pixel_ppo(
    out: str | Path, settings: PixelPPOSettings, *, overwrite: bool = False
) -> dict[str, Any]:
    """Train PPO on frames as ``settings`` says and write the run folder ``out``."""
    from safetensors.torch import save_model
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from thrifty.rl.frames import make_pixel_env
    from thrifty.rl.policy import init_fresh_actor_head
    from thrifty.rl.slot_policy import encoder_ledger, policy_kwargs

    s = settings
    s.check()
    out = Path(out)
    if (out / RESULT_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a finished PPO run is already here; pass --overwrite")
    size = frame_side(s)
    make_pixel_env(s.env, size).close()  # an unknown id fails here, in one line
    torch.manual_seed(s.seed)
    envs = make_vec_env(lambda: make_pixel_env(s.env, size), n_envs=s.n_envs, seed=s.seed)
    agent = PPO(
        "CnnPolicy",  # an image space: SB3 scales uint8 frames to [0, 1]
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
        policy_kwargs=policy_kwargs(s.arm, s.encoder, s.seed, s.features_dim),
        seed=s.seed,
        device="cpu",
        verbose=0,
    )
    init_fresh_actor_head(agent.policy)  # ortho_init is off: a near-uniform first policy
    start = encoder_ledger(s.arm, s.encoder)
    if start:
        ledger = Ledger.from_dict(start, f"{s.encoder} ledger")
    else:
        ledger = Ledger(unit="images", budget_words=None, prepared_words={"train": 0, "valid": 0})
    rows: list[dict] = []
    began = time.perf_counter()

    def evaluate(env_steps: int) -> dict:
        agent.policy.set_training_mode(False)
        scores = pixel_success_rate(
            agent.policy, s.env, size, s.eval_episodes, seed=s.seed, greedy=s.greedy
        )
        agent.policy.set_training_mode(True)
        return {"env_steps": int(env_steps), **scores, "seconds": time.perf_counter() - began}

    rows.append(evaluate(0))
    budget = (s.steps // s.rollout()) * s.rollout()
    agent.learn(total_timesteps=budget, callback=evaluation_callback(s, evaluate, rows))
    if rows[-1]["env_steps"] != agent.num_timesteps:
        rows.append(evaluate(agent.num_timesteps))
    ledger.env_steps = {"env": s.env, "budget": s.steps, "used": int(agent.num_timesteps)}
    trained = sum(p.numel() for p in agent.policy.parameters() if p.requires_grad)
    result = {
        "settings": asdict(s),
        "arm": s.arm,
        "image_size": size,
        "env_steps": int(agent.num_timesteps),
        "first": rows[0],
        "final": rows[-1],
        "trained_parameters": trained,
        "pretraining_images_read": ledger.words_seen,
        "seconds": time.perf_counter() - began,
    }
    with new_folder(out) as tmp:
        (tmp / CURVE_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
        save_model(agent.policy, str(tmp / "policy.safetensors"))
        ledger.save(tmp / LEDGER_FILE)
    envs.close()
    return result
