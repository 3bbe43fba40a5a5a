"""Atomic, verifiable, exactly-resumable checkpoints.

A checkpoint is written into ``step_X.tmp/``, fsynced, renamed with ``os.replace``, and only then
named by ``latest`` (itself replaced atomically). A folder that was never renamed does not exist
for resume. ``state.json`` records the sha256 of every other file so truncation or tampering is
caught on load. Nothing is unpickled: weights are safetensors, optimizer and RNG states are read
with ``torch.load(weights_only=True)``.

``model.safetensors`` holds the run's model, the one evaluation and export read. Networks an
objective trains besides it (ELECTRA's generator and heads) go to ``objective.safetensors``,
written only when there are any.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError
from thrifty.runs import CHECKPOINTS, LATEST, read_state, sha256_file

OBJECTIVE_WEIGHTS = "objective.safetensors"


def step_name(step: int) -> str:
    return f"step_{step:08d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state(extra: dict[str, torch.Tensor]) -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": np_state[2],
        "python": torch.tensor(random.getstate()[1], dtype=torch.int64),
        **extra,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"])
    )
    random.setstate((3, tuple(state["python"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model_state: dict[str, torch.Tensor],
    optim_state: dict,
    rng: dict,
    state: dict,
    config_yaml: str,
    keep_last: int,
    objective_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, prune old ones.

    ``objective_state``: weights of the objective's own networks, saved as objective.safetensors.
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = root / (step_name(step) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model_state.items()},
        str(tmp / "model.safetensors"),
    )
    names = ["model.safetensors", "optim.pt", "rng.pt", "config.yaml"]
    if objective_state is not None:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in objective_state.items()},
            str(tmp / OBJECTIVE_WEIGHTS),
        )
        names.append(OBJECTIVE_WEIGHTS)
    torch.save(optim_state, tmp / "optim.pt")
    torch.save(rng, tmp / "rng.pt")
    (tmp / "config.yaml").write_text(config_yaml)
    files = {name: sha256_file(tmp / name) for name in names}
    with open(tmp / "state.json", "w") as f:
        json.dump({**state, "step": step, "files": files}, f, indent=1)
    for name in [*files, "state.json"]:
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(tmp)
    if final.exists():  # re-saving a step after resume: replace the old copy
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_text_atomic(root / LATEST, final.name)
    _fsync_dir(root)
    prune(root, keep_last)
    return final


def prune(root: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints; word-mark ones stay."""
    if keep_last <= 0:
        return
    steps = sorted(p for p in root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
    latest = (root / LATEST).read_text().strip()
    prunable = []
    for ckpt in steps:
        try:
            marked = json.loads((ckpt / "state.json").read_text()).get("word_mark")
        except (OSError, json.JSONDecodeError):
            marked = None
        if not marked and ckpt.name != latest:
            prunable.append(ckpt)
    for ckpt in prunable[: max(len(prunable) - (keep_last - 1), 0)]:
        shutil.rmtree(ckpt, ignore_errors=True)


def load_training_state(ckpt: Path) -> tuple[dict, dict, dict]:
    """(state.json, optimizer state, rng state) of a verified checkpoint."""
    state = read_state(ckpt, verify=True)
    optim_state = torch.load(ckpt / "optim.pt", weights_only=True, map_location="cpu")
    rng = torch.load(ckpt / "rng.pt", weights_only=True)
    return state, optim_state, rng


def load_objective_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """Weights of the objective's own networks from a checkpoint (checksum verified on load)."""
    if OBJECTIVE_WEIGHTS not in read_state(ckpt, verify=False).get("files", {}):
        raise UserError(
            f"{ckpt} has no {OBJECTIVE_WEIGHTS}: it was not written by this objective "
            "(its generator and heads cannot be restored)"
        )
    return load_file(str(ckpt / OBJECTIVE_WEIGHTS))
