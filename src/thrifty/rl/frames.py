"""MiniGrid as pixels: RGB frames of the agent's view, to pretrain an encoder on and to run PPO
on (OCR-RL, Yoon et al. 2023; ``papers/ocr_rl.md``).

MiniGrid's ``RGBImgPartialObsWrapper`` paints the 7x7 egocentric view at ``tile`` pixels a
cell. At 4 pixels a cell the frame is 28x28, so a ViT with 4x4 patches reads one cell per patch
and nothing is resampled; any other size is rendered at the next larger tile and resized with
Pillow (bilinear).

- ``frame_source``: frames of random-policy rollouts on training levels, for the prepared image
  set ``images:minigrid-frames[:ENV]`` (``thrifty.data.images``). Levels and actions are drawn
  from ``seed``; level seeds stay below ``EVAL_LEVEL_BASE``, so no evaluation level is ever
  pretrained on. The label of a frame is how many objects (anything but floor, walls and
  unseen cells) its view shows, for probes.
- ``make_pixel_env``: the environment with observations (3, S, S) uint8, channels first, which
  Stable-Baselines3 takes as an image (divided by 255, not transposed).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from thrifty.errors import UserError

DEFAULT_ENV = "MiniGrid-Fetch-5x5-N2-v0"
DEFAULT_SIZE = 28
DEFAULT_COUNT = 2000
VIEW = 7  # MiniGrid's default agent view
EPISODE_FRAMES = 16  # frames kept per level: many short rollouts cover more layouts
CLASSES = ("no objects", "one object", "two objects", "three or more")
# MiniGrid object indices that are scenery, not objects: unseen, empty, wall, floor
SCENERY = (0, 1, 2, 3)


def _make(env_id: str, **kwargs):
    from thrifty.rl.requires import require_rl

    require_rl()  # one line naming the missing extra, before the imports fail
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids)

    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise UserError(f"--env={env_id!r}: {e}") from None


def make_pixel_env(env_id: str = DEFAULT_ENV, size: int = DEFAULT_SIZE, **kwargs):
    """``env_id`` with observations (3, size, size) uint8 of the agent's view."""
    if size < VIEW:
        raise UserError(f"--image-size={size}: frames need at least {VIEW} pixels a side")
    inner = _make(env_id, **kwargs)
    import gymnasium as gym
    from minigrid.wrappers import RGBImgPartialObsWrapper

    tile = math.ceil(size / VIEW)

    class PixelObservation(gym.ObservationWrapper):
        def __init__(self, inner) -> None:
            super().__init__(RGBImgPartialObsWrapper(inner, tile_size=tile))
            self.observation_space = gym.spaces.Box(0, 255, (3, size, size), np.uint8)

        def observation(self, observation):
            return to_frame(observation["image"], size)

    return PixelObservation(inner)


def to_frame(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 render -> (3, size, size) uint8, resized only when it differs."""
    if image.shape[0] != size:
        from PIL import Image

        image = np.asarray(
            Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), np.uint8
        )
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def objects_in_view(env) -> int:
    """Cells of the agent's current view that hold an object (the frame's label)."""
    grid = env.unwrapped.gen_obs()["image"][..., 0]
    return int(np.isin(grid, SCENERY, invert=True).sum())


def render_frames(env_id: str, count: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` frames (N, 3, size, size) uint8 of random rollouts and their labels (N,)."""
    from thrifty.rl.demos import EVAL_LEVEL_BASE

    env = make_pixel_env(env_id, size)
    rng = np.random.default_rng([seed, 3])  # its own stream: the split draws from ``seed``
    images = np.empty((count, 3, size, size), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    i, left = 0, 0
    while i < count:
        if left == 0:
            frame, _ = env.reset(seed=int(rng.integers(EVAL_LEVEL_BASE)))
            left = EPISODE_FRAMES
        images[i] = frame
        labels[i] = min(objects_in_view(env), len(CLASSES) - 1)
        i, left = i + 1, left - 1
        frame, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            left = 0
    env.close()
    return images, labels


def frame_source(
    source: str, count: int | None, image_size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """Frames of ``minigrid-frames[:ENV]``: images, labels, class names, the ledger's row."""
    env_id = source.partition(":")[2] or DEFAULT_ENV
    count = DEFAULT_COUNT if count is None else count
    size = DEFAULT_SIZE if image_size is None else image_size
    if count < 10:
        raise UserError(f"--count={count}: frames need at least 10 (train, valid and test)")
    images, labels = render_frames(env_id, count, size, seed)
    row = {
        "path": f"synthetic:minigrid-frames:{env_id}",
        "synthetic": True,
        "generator": {"env": env_id, "count": count, "image_size": size, "seed": seed},
        "sha256": hashlib.sha256(images.tobytes()).hexdigest(),
        "words_total": count,
        "words_used": count,
    }
    return images, labels, list(CLASSES), row
