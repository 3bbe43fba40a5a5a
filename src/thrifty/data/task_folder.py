"""A seeded family of decision-making tasks written as a prepared dataset folder.

Shared by the task families of DPT (Lee et al. 2023, arXiv 2306.14892): bandits
(``thrifty.data.bandits``) and Dark Room (``thrifty.data.darkroom``). A folder holds
``{split}.safetensors`` for ``train`` and ``valid`` (never pickles) and ``manifest.json`` with
the generator settings and a ledger counted in transitions, whose one ``synthetic`` source
carries the sha256 of the files: the same settings and seed always write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.atomic import new_folder
from thrifty.data.budget import Ledger
from thrifty.data.tokens import FORMAT, MANIFEST_FILE, load_manifest
from thrifty.errors import UserError

SPLITS = ("train", "valid")


def digest(files: list[Path]) -> tuple[str, dict[str, str]]:
    """The sha256 of ``files`` together, and of each by name."""
    whole, each = hashlib.sha256(), {}
    for f in files:
        data = f.read_bytes()
        whole.update(data)
        each[f.name] = hashlib.sha256(data).hexdigest()
    return whole.hexdigest(), each


def task_counts(
    out: str | Path, tasks: int, valid_tasks: int | None, overwrite: bool
) -> dict[str, int]:
    """Tasks per split (validation: a tenth of ``tasks`` by default, at least 1); a UserError,
    before any work, for an empty split or an existing folder."""
    valid_tasks = max(1, tasks // 10) if valid_tasks is None else valid_tasks
    counts = {"train": tasks, "valid": valid_tasks}
    for split, option, noun in (
        ("train", "--tasks", "training"),
        ("valid", "--valid-tasks", "validation"),
    ):
        if counts[split] < 1:
            raise UserError(f"{option}={counts[split]}: generate at least 1 {noun} task")
    if (Path(out) / MANIFEST_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a prepared dataset is already here; pass --overwrite")
    return counts


def split_generators(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per split, all from ``seed``."""
    streams = np.random.SeedSequence(seed).spawn(len(SPLITS))
    return {split: np.random.default_rng(s) for split, s in zip(SPLITS, streams, strict=True)}


def write_task_folder(
    out: str | Path,
    *,
    modality: str,
    source: str,
    settings: dict[str, Any],
    seed: int,
    splits: dict[str, dict[str, np.ndarray]],
    transitions: dict[str, int],
    fields: dict[str, Any],
) -> dict[str, Any]:
    """Write ``splits`` (split -> name -> array) atomically to ``out`` with a manifest of
    ``modality``, the ``fields`` its data source reads, and a ledger of ``transitions`` per
    split whose one source is named ``source``; returns the manifest."""
    from safetensors.numpy import save_file

    counts = {split: len(next(iter(arrays.values()))) for split, arrays in splits.items()}
    with new_folder(Path(out)) as tmp:
        files = []
        for split in SPLITS:
            files.append(tmp / f"{split}.safetensors")
            save_file(splits[split], str(files[-1]))
        whole, each = digest(files)
        total = sum(transitions.values())
        source = {
            "path": source,
            "synthetic": True,
            "generator": {**settings, "tasks": counts},
            "sha256": whole,
            "files": each,
            "words_total": total,
            "words_used": total,
        }
        ledger = Ledger(
            budget_words=total,
            seed=seed,
            sources=[source],
            prepared_words=transitions,
            unit="transitions",
        )
        manifest = {
            "format": FORMAT,
            "modality": modality,
            **fields,
            "seed": seed,
            "settings": settings,
            "counts": counts,
            "ledger": ledger.to_dict(),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def manifest_of(path: str | Path, modality: str) -> dict[str, Any]:
    """The manifest of a prepared dataset of ``modality``; a UserError for another one."""
    manifest = load_manifest(Path(path))
    if manifest.get("modality") != modality:
        raise UserError(f"{path}: not a {modality} dataset (modality {manifest.get('modality')!r})")
    return manifest


def load_split(path: str | Path, split: str) -> dict[str, torch.Tensor]:
    """The tensors of one split of a prepared task folder."""
    from safetensors.torch import load_file

    file = Path(path) / f"{split}.safetensors"
    if not file.is_file():
        raise UserError(f"{path}: no {split} split ({file.name}); prepare it again")
    return load_file(str(file))
