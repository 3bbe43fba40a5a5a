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

import errno
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from thrifty.atomic import write_text_atomic
from thrifty.config import RunConfig, to_dict
from thrifty.errors import UserError
from thrifty.runs import CHECKPOINTS, LATEST, read_config, read_state, sha256_file

OBJECTIVE_WEIGHTS = "objective.safetensors"
EMA_WEIGHTS = "ema.safetensors"  # the moving average of the model's weights (train.ema_decay)
TMP = ".tmp"  # a checkpoint being written
OLD = ".old"  # the previous copy of a step being re-saved, while the new one is swapped in


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
    ema_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, prune old ones.

    ``objective_state``: weights of the objective's own networks, saved as objective.safetensors;
    ``ema_state``: the moving average of the model's weights, saved as ema.safetensors.
    A full disk is a UserError naming the folder; the previous checkpoint stays as it was.
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = root / (step_name(step) + TMP)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        files = {
            "model.safetensors": model_state,
            OBJECTIVE_WEIGHTS: objective_state,
            EMA_WEIGHTS: ema_state,
        }
        _write_folder(tmp, files, optim_state, rng, {**state, "step": step}, config_yaml)
        if final.exists():  # re-saving a step after resume: swap the new copy in
            _swap_in(tmp, final)
        else:
            os.replace(tmp, final)
        write_text_atomic(root / LATEST, final.name)
        _fsync_dir(root)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        previous = _named_by_latest(root)
        for partial in (tmp, final.with_name(final.name + OLD)):  # give the space back at once
            if partial.name != previous:
                shutil.rmtree(partial, ignore_errors=True)
        kept = (
            f"the last good checkpoint {root / previous} is intact"
            if previous
            else "there is no earlier one"
        )
        raise UserError(
            f"no space left on the device while writing checkpoint {tmp} ({kept}); "
            "free some space, then continue with --resume auto"
        ) from None
    prune(root, keep_last)
    return final


def _write_folder(
    tmp: Path,
    weights: dict[str, dict[str, torch.Tensor] | None],
    optim_state: dict,
    rng: dict,
    state: dict,
    config_yaml: str,
) -> None:
    """Every file of one checkpoint in ``tmp``, checksummed into state.json, fsynced.

    ``weights``: file name -> tensors, for each safetensors file (None: not written).
    """
    tmp.mkdir()
    names = [name for name, tensors in weights.items() if tensors is not None]
    for name in names:
        tensors = {k: v.detach().cpu().contiguous() for k, v in weights[name].items()}
        save_file(tensors, str(tmp / name))
    names += ["optim.pt", "rng.pt", "config.yaml"]
    torch.save(optim_state, tmp / "optim.pt")
    torch.save(rng, tmp / "rng.pt")
    (tmp / "config.yaml").write_text(config_yaml)
    files = {name: sha256_file(tmp / name) for name in names}
    with open(tmp / "state.json", "w") as f:
        json.dump({**state, "files": files}, f, indent=1)
    for name in [*files, "state.json"]:
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(tmp)


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace the existing checkpoint ``final`` by the finished ``tmp``.

    Two folders cannot trade names in one portable step, so while ``final`` is replaced,
    ``latest`` (if it names ``final``) names a hard-linked copy of it instead: at no moment
    does it name a folder that is gone or half-written.
    """
    root = final.parent
    aside = final.with_name(final.name + OLD)
    shutil.rmtree(aside, ignore_errors=True)
    moved = _named_by_latest(root) == final.name
    if moved:
        shutil.copytree(final, aside, copy_function=_link_or_copy)
        _fsync_dir(aside)
        write_text_atomic(root / LATEST, aside.name)
    shutil.rmtree(final)
    os.replace(tmp, final)
    if moved:
        write_text_atomic(root / LATEST, final.name)
        shutil.rmtree(aside, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _named_by_latest(root: Path) -> str | None:
    try:
        return (root / LATEST).read_text().strip()
    except OSError:
        return None


def remove_stale(run_dir_or_root: Path) -> None:
    """Delete what a crash or a full disk left behind: unfinished ``step_X.tmp`` folders,
    copies set aside during a swap, and temp files of ``latest``. The folder ``latest`` names
    is always kept."""
    root = Path(run_dir_or_root)
    if root.name != CHECKPOINTS:
        root = root / CHECKPOINTS
    if not root.is_dir():
        return
    latest = _named_by_latest(root)
    for path in root.iterdir():
        if path.name == latest:
            continue
        if path.is_dir() and path.name.startswith("step_") and path.name.endswith((TMP, OLD)):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.name.startswith(f"{LATEST}.tmp-"):
            path.unlink(missing_ok=True)


def prune(root: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints; word-mark ones stay."""
    if keep_last <= 0:
        return
    steps = sorted(p for p in root.glob("step_*") if p.is_dir() and not p.name.endswith((TMP, OLD)))
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


def check_same_model(ckpt: Path | None, cfg: RunConfig) -> Path | None:
    """``ckpt`` if its model section matches ``cfg``'s, else a UserError naming the keys that
    differ: its weights would not load, or would load into a different network."""
    if ckpt is None:
        return None
    read_state(ckpt, verify=("config.yaml",))  # an altered file is reported as such
    saved, new = to_dict(read_config(ckpt).model), to_dict(cfg.model)
    # `size` only supplies defaults for the explicit widths, which are compared themselves.
    keys = [k for k in sorted(saved.keys() | new.keys()) if k != "size"]
    changed = [
        f"model.{k}: {saved.get(k)!r} -> {new.get(k)!r}" for k in keys if saved.get(k) != new.get(k)
    ]
    if changed:
        raise UserError(
            f"cannot resume from {ckpt}: the model section changed ({'; '.join(changed)}); "
            f"keep the model settings of {ckpt / 'config.yaml'}, or start a new run "
            "with another name="
        )
    return ckpt


def load_training_state(ckpt: Path) -> tuple[dict, dict, dict]:
    """(state.json, optimizer state, rng state) of a verified checkpoint."""
    state = read_state(ckpt, verify=True)
    optim_state = torch.load(ckpt / "optim.pt", weights_only=True, map_location="cpu")
    rng = torch.load(ckpt / "rng.pt", weights_only=True)
    return state, optim_state, rng


def _extra_weights(ckpt: Path, name: str, missing: str) -> dict[str, torch.Tensor]:
    if name not in read_state(ckpt, verify=False).get("files", {}):
        raise UserError(f"{ckpt} has no {name}: {missing}")
    return load_file(str(ckpt / name))  # its checksum was verified with the checkpoint


def load_ema_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """The moving average of the model's weights in a checkpoint (``train.ema_decay``)."""
    why = "the run kept no moving average (train.ema_decay), or changed train.ema_decay since"
    return _extra_weights(ckpt, EMA_WEIGHTS, why)


def load_objective_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """Weights of the objective's own networks from a checkpoint (checksum verified on load)."""
    why = "it was not written by this objective (its generator and heads cannot be restored)"
    return _extra_weights(ckpt, OBJECTIVE_WEIGHTS, why)
