"""One clear error when the ``rl`` extra is missing, instead of an ImportError deep inside."""

from __future__ import annotations

import importlib

from thrifty.errors import UserError


def require_rl() -> None:
    """A UserError naming the missing package and the extra that installs it."""
    for module, package in (
        ("gymnasium", "gymnasium"),
        ("minigrid", "minigrid"),
        ("stable_baselines3", "stable-baselines3"),
    ):
        try:
            importlib.import_module(module)
        except ImportError:
            raise UserError(
                f"{package} is not installed: pip install 'thrifty[rl]' (MiniGrid and PPO)"
            ) from None
