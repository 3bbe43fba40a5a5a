"""``demos``: a prepared demonstration dataset (``thrifty.rl.demos``) as a data source.

Item ``i`` is transition ``i`` of the split: ``batch`` gives ``observations`` (B, OBS_WIDTH)
long — the flat MiniGrid observation of ``thrifty.rl.observations`` — and ``actions`` (B,),
the demonstrator's action, which behaviour cloning learns. One observation fills the ``grid``
stem's positions (its cells and the direction token; that becomes ``data.seq_len``), so a
position charges 1 / those positions of a transition. Reading the files needs no gymnasium.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from thrifty.data.source import SOURCES
from thrifty.data.tokens import load_manifest
from thrifty.errors import UserError
from thrifty.models.stem.grid import GRID_TOKENS


def load_split(path: Path, split: str) -> dict[str, torch.Tensor]:
    """The tensors of one split of a prepared demonstration dataset."""
    from safetensors.torch import load_file

    file = Path(path) / f"{split}.safetensors"
    if not file.is_file():
        raise UserError(f"{path}: no {split} split ({file.name}); record it again")
    return load_file(str(file))


@SOURCES.register("demos")
class DemoSource:
    @dataclass(kw_only=True)
    class Config:
        pass  # the environment and its actions are in the folder's manifest

    unit = "transitions"
    run_files = ()

    def __init__(self, path: Path, split: str) -> None:
        self.path, self.split = Path(path), split
        self.manifest = load_manifest(self.path)
        tensors = load_split(self.path, split)
        self.observations, self.actions = tensors["observations"], tensors["actions"]

    def num_items(self, seq_len: int) -> int:
        return len(self.actions)

    def batch(self, indices, seq_len: int) -> dict[str, Any]:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return {"observations": self.observations[index].long(), "actions": self.actions[index]}

    @property
    def units_per_token(self) -> float:
        return 1.0 / GRID_TOKENS

    def fit(self, model):
        """``model`` with the grid stem; a UserError for another stem or a model too short."""
        stem = dict(model.stem)
        if stem.get("name") != "grid":
            raise UserError(
                f"{self.path} holds MiniGrid demonstrations: set model.stem=grid (model.stem is "
                f"{stem.get('name')!r})"
            )
        if GRID_TOKENS > model.max_seq_len:
            raise UserError(
                f"model.max_seq_len={model.max_seq_len} is below the {GRID_TOKENS} positions "
                "of an observation (the view's cells and the direction)"
            )
        return replace(model, stem=stem)

    def item_tokens(self, model) -> int:
        return GRID_TOKENS
