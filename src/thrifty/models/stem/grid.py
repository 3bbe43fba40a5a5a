"""``grid``: MiniGrid's symbolic egocentric view as tokens, one per cell plus one for the
agent's direction (the layout of ``thrifty.rl.observations``: 7·7 cells of (object, colour,
state) codes, then the direction).

A cell's token is the sum of an object, a colour and a state embedding and a learned embedding
of its place in the view; the direction token comes first and, read at the last layer, is the
observation's feature (``direction_features``), as a class token is in a ViT. Tables are sized
with headroom over MiniGrid's vocabulary (11 objects, 6 colours, 3 states); the lookups add no
FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thrifty.models.stem.base import STEMS

VIEW_CELLS = 7 * 7
GRID_TOKENS = VIEW_CELLS + 1  # the direction token, then the cells
OBJECTS, COLOURS, STATES, DIRECTIONS = 16, 8, 4, 4


@STEMS.register("grid")
class GridStem(nn.Module):
    @dataclass(kw_only=True)
    class Config:
        pass  # MiniGrid's view is fixed: 7x7 cells of three codes and a direction

    def __init__(self, cfg: Config, model) -> None:
        super().__init__()
        width = model.d_model
        self.objects = nn.Embedding(OBJECTS, width)
        self.colours = nn.Embedding(COLOURS, width)
        self.states = nn.Embedding(STATES, width)
        self.directions = nn.Embedding(DIRECTIONS, width)
        self.position = nn.Parameter(torch.zeros(VIEW_CELLS, width))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, 148) long codes -> (B, 50, C)."""
        cells = observations[:, :-1].view(-1, VIEW_CELLS, 3)
        tokens = (
            self.objects(cells[..., 0])
            + self.colours(cells[..., 1])
            + self.states(cells[..., 2])
            + self.position
        )
        direction = self.directions(observations[:, -1])[:, None]
        return torch.cat([direction, tokens], 1)

    def reset_parameters(self, std: float | None = None) -> None:
        std = 0.02 if std is None else std
        for table in (self.objects, self.colours, self.states, self.directions):
            nn.init.normal_(table.weight, 0.0, std)
        nn.init.normal_(self.position, 0.0, std)

    def embedding_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, head_fraction: float) -> float:
        return 0.0  # lookups and adds; no LM head


def direction_features(model, observations: torch.Tensor) -> torch.Tensor:
    """(B, C) features of flat observations: the direction token's final hidden state."""
    return model(observations, causal=False)[:, 0]
