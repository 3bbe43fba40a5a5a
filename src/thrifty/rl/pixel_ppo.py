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

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from thrifty.data.budget import Ledger
from thrifty.errors import UserError
from thrifty.rl.frames import DEFAULT_ENV, DEFAULT_SIZE
from thrifty.rl.online import (
    OnlineSettings,
    build_agent,
    learn_with_curve,
    refuse_finished,
    write_run,
)


@dataclass(frozen=True)
class PixelPPOSettings(OnlineSettings):
    env: str = DEFAULT_ENV
    steps: int = 20_000
    lr: float = 3e-4
    eval_every: int = 5_000
    arm: str = "slots"
    """slots (a slot_ae run, frozen), cnn (from scratch) or cnn-ae (a frozen autoencoder)."""
    encoder: str | None = None
    """The pretrained encoder: a slot_ae run for slots, a pretrain_cnn_ae folder for cnn-ae."""
    image_size: int | None = None
    """Frame side in pixels (None: the encoder's, or 28 for a scratch CNN)."""
    features_dim: int = 64

    def check(self) -> None:
        from thrifty.rl.slot_policy import ARMS

        if self.arm not in ARMS:
            raise UserError(f"--arm={self.arm!r}: choose one of {', '.join(ARMS)}")
        if self.arm == "cnn" and self.encoder is not None:
            raise UserError("--arm=cnn trains its CNN from scratch: drop --encoder")
        if self.arm != "cnn" and self.encoder is None:
            raise UserError(f"--arm={self.arm} needs --encoder (the pretrained encoder)")
        self.check_online()


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


def run_pixel_ppo(
    out: str | Path, settings: PixelPPOSettings, *, overwrite: bool = False
) -> dict[str, Any]:
    """Train PPO on frames as ``settings`` says and write the run folder ``out``."""
    from stable_baselines3.common.env_util import make_vec_env

    from thrifty.rl.frames import make_pixel_env
    from thrifty.rl.policy import action_logits, init_fresh_actor_head
    from thrifty.rl.slot_policy import encoder_ledger, policy_kwargs
    from thrifty.rl.success import success_over

    s = settings
    s.check()
    out = Path(out)
    refuse_finished(out, overwrite)
    size = frame_side(s)
    make_pixel_env(s.env, size).close()  # an unknown id fails here, in one line
    torch.manual_seed(s.seed)
    envs = make_vec_env(lambda: make_pixel_env(s.env, size), n_envs=s.n_envs, seed=s.seed)
    kwargs = policy_kwargs(s.arm, s.encoder, s.seed, s.features_dim)
    agent = build_agent("CnnPolicy", envs, s, kwargs)  # CnnPolicy: uint8 frames scaled to [0, 1]
    init_fresh_actor_head(agent.policy)  # ortho_init is off: a near-uniform first policy
    start = encoder_ledger(s.arm, s.encoder)
    if start:
        ledger = Ledger.from_dict(start, f"{s.encoder} ledger")
    else:
        ledger = Ledger(unit="images", budget_words=None, prepared_words={"train": 0, "valid": 0})

    def scores() -> dict:
        return success_over(
            lambda obs: action_logits(agent.policy, obs),
            lambda: make_pixel_env(s.env, size),
            s.eval_episodes,
            seed=s.seed,
            greedy=s.greedy,
        )

    rows, began = learn_with_curve(agent, s, scores)
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
    write_run(out, rows, result, agent, ledger)
    envs.close()
    return result
