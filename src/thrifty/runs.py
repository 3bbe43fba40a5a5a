"""Reading run folders: find a checkpoint, verify it, and load the model it holds.

Used by evaluation, export and analysis, which must never import the training loop. Layout::

    runs/<name>/config.yaml  metrics.jsonl  ledger.json  tokenizer.json
    runs/<name>/checkpoints/step_00001000/{model.safetensors, config.yaml, optim.pt,
                                           state.json, rng.pt}
    runs/<name>/checkpoints/latest          # text: "step_00001000"
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from thrifty.config import RunConfig, from_dict, read_yaml
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer

CHECKPOINTS = "checkpoints"
LATEST = "latest"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint named by ``checkpoints/latest``, or None when the run has none yet."""
    pointer = Path(run_dir) / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    ckpt = pointer.parent / pointer.read_text().strip()
    if not ckpt.is_dir():
        raise UserError(f"{pointer} names {ckpt.name}, which does not exist")
    return ckpt


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a run folder (-> its latest checkpoint) or a checkpoint folder."""
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    if not path.exists():
        raise UserError(f"no such run or checkpoint: {path}")
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise UserError(f"{path} holds no checkpoint (expected {path}/{CHECKPOINTS}/{LATEST})")
    return ckpt


def read_state(ckpt: Path, verify: bool | tuple[str, ...] = True) -> dict:
    """state.json of a checkpoint; with ``verify`` every file's sha256 must match (or only
    those of the files ``verify`` names)."""
    try:
        state = json.loads((ckpt / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{ckpt}/state.json is unreadable ({e})") from None
    if verify:
        for name, expected in state.get("files", {}).items():
            if verify is not True and name not in verify:
                continue
            file = ckpt / name
            if not file.is_file():
                raise UserError(f"checkpoint {ckpt} is missing {name}")
            if sha256_file(file) != expected:
                raise UserError(
                    f"checkpoint {ckpt}: {name} fails its checksum (truncated or altered)"
                )
    return state


def read_config(ckpt: Path) -> RunConfig:
    """The resolved RunConfig a checkpoint (or run folder) was written with."""
    path = ckpt / "config.yaml"
    if not path.is_file():
        raise UserError(f"{ckpt} has no config.yaml")
    data = read_yaml(path)
    try:
        return from_dict(RunConfig, data)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


def build_model(cfg: RunConfig, state: dict) -> Transformer:
    """The (untrained) network a checkpoint's weights belong to: the config's model, with its
    Monarch layers dense when the run had switched (``train.densify_at``)."""
    model = Transformer(cfg.model)
    if state.get("densified"):
        from thrifty.models.linear.densify import densify

        densify(model)
    return model


def model_kind(state: dict, cfg: RunConfig) -> str:
    """The kind of model a checkpoint holds (``thrifty.model_kind``), as its state.json records
    it; for checkpoints written before that, the kind its objective section declares."""
    if "model_kind" in state:
        return state["model_kind"]
    from thrifty.objectives import OBJECTIVES  # only older checkpoints need the registry

    return OBJECTIVES.get(cfg.objective["name"]).kind_for(cfg.objective)


def flops_per_token(state: dict, cfg: RunConfig) -> float:
    """Training FLOPs per token of a checkpoint's run, as its state.json records it; for older
    checkpoints, computed from its config (model built on the meta device)."""
    if "flops_per_token" in state:
        return state["flops_per_token"]
    from thrifty.objectives import OBJECTIVES  # only older checkpoints need the registry

    with torch.device("meta"):
        model = Transformer(cfg.model)
        objective = OBJECTIVES.build(cfg.objective, model, seed=0)
    return model.flops_per_token(cfg.data.seq_len, objective.head_fraction())


@dataclass
class LoadedModel:
    model: Transformer
    cfg: RunConfig
    checkpoint: Path
    state: dict
    weights: str = "model.safetensors"
    """The file the weights came from (ema.safetensors: their moving average)."""

    @property
    def run_dir(self) -> Path:
        return self.checkpoint.parent.parent

    def tokenizer(self):
        from thrifty.data.tokenizer import load_tokenizer

        path = self.run_dir / "tokenizer.json"
        if not path.is_file():
            raise UserError(f"{self.run_dir} has no tokenizer.json")
        return load_tokenizer(path)

    def ledger(self) -> dict:
        """The ledger as it stood when this checkpoint was written."""
        return self.state.get("ledger", {})

    @property
    def kind(self) -> str:
        """causal, mlm, mntp or discriminator (``thrifty.model_kind``)."""
        return model_kind(self.state, self.cfg)


def load_model(
    path: str | Path, device: str | torch.device = "cpu", ema: bool = False
) -> LoadedModel:
    """Load the model of a run (latest checkpoint) or of a checkpoint folder, checksums verified;
    ``ema``: the moving average of its weights instead (``train.ema_decay``)."""
    ckpt = resolve_checkpoint(path)
    state = read_state(ckpt)
    cfg = read_config(ckpt)
    model = build_model(cfg, state)
    name = "ema.safetensors" if ema else "model.safetensors"
    if ema and name not in state.get("files", {}):
        raise UserError(f"{ckpt} has no {name} (the run kept no moving average: train.ema_decay)")
    weights = load_file(str(ckpt / name))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise UserError(f"{ckpt}/{name} does not match its config.yaml: {e}") from None
    model.to(device).eval()
    return LoadedModel(model, cfg, ckpt, state, name)
