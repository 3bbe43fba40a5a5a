"""MiniGrid observations as one flat vector, the layout every part of thrifty reads.

MiniGrid's observation is a dict: ``image`` (7, 7, 3) — the agent's egocentric view, each cell
(object index, colour index, state) — ``direction`` (0..3) and a ``mission`` string.
Stable-Baselines3 would treat a (7, 7, 3) uint8 box as an RGB picture (transpose it, divide by
255), and cannot take the string, so the wrapper hands out a float vector of 7·7·3 cell codes
then the direction: ``OBS_WIDTH`` = 148 numbers that are all small integers. The demonstration
datasets store the same vector as uint8, and the ``grid`` stem turns it back into indices.
The mission is constant within the tasks used here (DoorKey, MultiRoom, ...), so it is dropped.
"""

from __future__ import annotations

import numpy as np

VIEW = 7  # MiniGrid's default agent view size
CELL_FIELDS = 3  # object, colour, state
OBS_WIDTH = VIEW * VIEW * CELL_FIELDS + 1


def flatten(obs: dict) -> np.ndarray:
    """(OBS_WIDTH,) float32 of one MiniGrid observation dict."""
    image = np.asarray(obs["image"], dtype=np.float32)
    if image.shape != (VIEW, VIEW, CELL_FIELDS):
        raise ValueError(f"expected a {VIEW}x{VIEW}x{CELL_FIELDS} view, got {image.shape}")
    return np.concatenate([image.reshape(-1), [float(obs["direction"])]]).astype(np.float32)


def flat_observation_env(env):
    """``env`` wrapped so observations are ``flatten``ed vectors."""
    import gymnasium as gym

    class FlatObservation(gym.ObservationWrapper):
        def __init__(self, inner) -> None:
            super().__init__(inner)
            self.observation_space = gym.spaces.Box(0.0, 255.0, (OBS_WIDTH,), np.float32)

        def observation(self, observation):
            return flatten(observation)

    return FlatObservation(env)


def make_env(env_id: str, **kwargs):
    """A MiniGrid environment ``env_id`` with flat observations (a UserError for an unknown
    id)."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids)

    from thrifty.errors import UserError

    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise UserError(f"--env={env_id!r}: {e}") from None
    return flat_observation_env(env)
