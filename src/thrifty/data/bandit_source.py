"""``bandit``: a prepared bandit dataset (``thrifty.data.bandits``) as a data source.

Item ``i`` is task ``i`` of the split: ``batch`` gives ``context`` (B, n + 1, arms + 2), the
query token then the task's n pulls as ``transitions`` stem tokens, and ``actions`` (B,), the
optimal arm DPT learns. The ledger's unit is transitions: an item fills n + 1 positions (that
becomes ``data.seq_len``) and holds n transitions, so a position charges n / (n + 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from thrifty.data.bandits import transition_features
from thrifty.data.source import SOURCES
from thrifty.data.task_folder import load_split
from thrifty.data.tokens import load_manifest
from thrifty.errors import UserError


@SOURCES.register("bandit")
class BanditSource:
    @dataclass(kw_only=True)
    class Config:
        pass  # arms and context length are in the folder's manifest

    unit = "transitions"
    run_files = ()

    def __init__(self, path: Path, split: str) -> None:
        self.path, self.split = Path(path), split
        self.manifest = load_manifest(self.path)
        self.arms, self.context_len = int(self.manifest["arms"]), int(self.manifest["context_len"])
        tensors = load_split(self.path, split)
        self.actions, self.rewards, self.optimal = (
            tensors["actions"],
            tensors["rewards"],
            tensors["optimal"],
        )

    def num_items(self, seq_len: int) -> int:
        return len(self.optimal)

    def batch(self, indices, seq_len: int) -> dict[str, Any]:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        context = transition_features(self.actions[index], self.rewards[index], self.arms)
        return {"context": context, "actions": self.optimal[index].long()}

    @property
    def units_per_token(self) -> float:
        return self.context_len / (self.context_len + 1)

    def fit(self, model):
        """``model`` with the transitions stem sized to these bandits' arms; a UserError for
        another stem, other arms, or a context longer than the model takes."""
        stem = dict(model.stem)
        if stem.get("name") != "transitions":
            raise UserError(
                f"{self.path} holds bandit tasks: set model.stem=transitions (model.stem is "
                f"{stem.get('name')!r})"
            )
        if stem.get("arms") not in (None, self.arms):
            raise UserError(
                f"model.stem.arms={stem['arms']} does not match the {self.arms} arms of {self.path}"
            )
        if stem.get("state_dim") not in (None, 0):  # bandits have no state
            raise UserError(
                f"model.stem.state_dim={stem['state_dim']}: bandit tasks have no state; set 0"
            )
        if self.context_len + 1 > model.max_seq_len:
            raise UserError(
                f"model.max_seq_len={model.max_seq_len} is below the {self.context_len + 1} "
                f"positions of a task (query + {self.context_len} pulls) in {self.path}"
            )
        return replace(model, stem={**stem, "arms": self.arms})

    def item_tokens(self, model) -> int:
        return self.context_len + 1
