"""``darkroom``: a prepared Dark Room dataset (``thrifty.data.darkroom``) as a data source.

Item ``i`` is task ``i`` of the split: ``batch`` gives ``context`` (B, n + 1, F), the query
token (holding s_q) then the task's n random-policy transitions as ``transitions`` stem tokens
with state features, and ``actions`` (B,), the optimal action at s_q that DPT learns. The
ledger's unit is transitions: an item fills n + 1 positions and holds n transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from thrifty.data.darkroom import darkroom_features
from thrifty.data.source import SOURCES
from thrifty.data.task_folder import load_split
from thrifty.data.tokens import load_manifest
from thrifty.errors import UserError

FIELDS = ("states", "actions", "rewards", "next_states", "query", "optimal")


@SOURCES.register("darkroom")
class DarkRoomSource:
    @dataclass(kw_only=True)
    class Config:
        pass  # grid, actions and context length are in the folder's manifest

    unit = "transitions"
    run_files = ()

    def __init__(self, path: Path, split: str) -> None:
        self.path, self.split = Path(path), split
        self.manifest = load_manifest(self.path)
        m = self.manifest
        self.arms, self.state_dim = int(m["arms"]), int(m["state_dim"])
        self.grid, self.context_len = int(m["grid"]), int(m["context_len"])
        self.features = str(m["features"])
        tensors = load_split(self.path, split)
        self.tensors = {name: tensors[name] for name in FIELDS}

    def num_items(self, seq_len: int) -> int:
        return len(self.tensors["optimal"])

    def batch(self, indices, seq_len: int) -> dict[str, Any]:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        t = {name: value[index] for name, value in self.tensors.items()}
        context = darkroom_features(
            t["query"],
            t["states"],
            t["actions"],
            t["rewards"],
            t["next_states"],
            self.grid,
            self.features,
        )
        return {"context": context, "actions": t["optimal"].long()}

    @property
    def units_per_token(self) -> float:
        return self.context_len / (self.context_len + 1)

    def fit(self, model):
        """``model`` with the transitions stem sized to this room's actions and state
        features; a UserError for another stem, other sizes, or a context longer than the
        model takes."""
        stem = dict(model.stem)
        if stem.get("name") != "transitions":
            raise UserError(
                f"{self.path} holds Dark Room tasks: set model.stem=transitions (model.stem is "
                f"{stem.get('name')!r})"
            )
        for key, value in (("arms", self.arms), ("state_dim", self.state_dim)):
            if stem.get(key) not in (None, value):
                raise UserError(
                    f"model.stem.{key}={stem[key]} does not match the {value} of the "
                    f"{self.grid}×{self.grid} room in {self.path}"
                )
        if self.context_len + 1 > model.max_seq_len:
            raise UserError(
                f"model.max_seq_len={model.max_seq_len} is below the {self.context_len + 1} "
                f"positions of a task (query + {self.context_len} transitions) in {self.path}"
            )
        return replace(model, stem={**stem, "arms": self.arms, "state_dim": self.state_dim})

    def item_tokens(self, model) -> int:
        return self.context_len + 1
