"""The data-source seam: what training reads from a prepared dataset, whatever the modality.

The loop, validation and samplers see a dataset only through a ``DataSource`` for one split:

- ``num_items(seq_len)``: how many items the split holds (text: windows of ``seq_len + 1``
  tokens; modalities without sequences ignore the length);
- ``batch(indices, seq_len)``: the ``Batch`` fields of those items, a dict of tensors (text:
  ``{"ids": (B, seq_len + 1)}``). Samplers deal only in indices, so they stay modality-free;
- ``unit`` and ``units_per_token``: the ledger's unit (``words`` for text; ``images``,
  ``pairs``, ``transitions`` for others) and how many of them one position of an item charges
  (text: the training split's words per token), so the loop charges what a step read;
- ``fit(model)``: the model settings the data decides (text: the tokenizer's vocabulary;
  images: the patch stem's image size and channels);
- ``item_tokens(model)``: the positions one item fills in the model fitted to it, which
  becomes ``data.seq_len`` (images: the patches); None for text, whose windows are
  ``data.seq_len`` long;
- ``run_files``: files copied into the run folder (text: ``tokenizer.json``; an image set:
  its preprocessing spec);
- ``manifest``: the dataset's manifest, with its ledger (sources and their sha256).

Members register in ``SOURCES`` under the manifest's ``modality``; a manifest without one is
text (every dataset written before this seam). ``open_source(path, split)`` picks the member.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from thrifty.data.tokens import load_manifest
from thrifty.errors import UserError
from thrifty.registry import Registry

SOURCES = Registry("data source")

MEMBERS = (  # modules of the SOURCES members, imported when a dataset is opened
    "thrifty.data.text_source",
    "thrifty.data.image_source",
    "thrifty.data.pair_source",
    "thrifty.data.bandit_source",
    "thrifty.data.darkroom_source",
    "thrifty.data.demo_source",
)


class DataSource(Protocol):
    path: Path
    split: str
    manifest: dict[str, Any]
    unit: str
    run_files: tuple[str, ...]

    def num_items(self, seq_len: int) -> int: ...

    def batch(self, indices, seq_len: int) -> dict[str, Any]: ...

    @property
    def units_per_token(self) -> float: ...

    def fit(self, model): ...

    def item_tokens(self, model) -> int | None: ...


def modality(manifest: dict[str, Any]) -> str:
    """The modality a manifest declares (text when it declares none)."""
    return str(manifest.get("modality", "text"))


def open_source(path: str | Path, split: str) -> DataSource:
    """The data source of one split of the prepared dataset at ``path``."""
    for member in MEMBERS:  # importing a member registers it
        importlib.import_module(member)
    path = Path(path)
    kind = modality(load_manifest(path))
    if kind not in SOURCES.names():
        raise UserError(
            f"{path}: modality {kind!r} has no data source; known: {', '.join(SOURCES.names())}"
        )
    return SOURCES.get(kind)(path, split)
