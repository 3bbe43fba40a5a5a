"""What a report reads from one run folder, tolerant of partial runs.

A run may have only ``metrics.jsonl`` (still training), no checkpoint yet, or no ``eval/``
folder; whatever is there is reported. A file that exists but cannot be read is skipped and
named in ``RunData.problems``, so one truncated JSON does not lose the rest of the report.
Training FLOPs are ``flops_per_token × tokens seen`` (Kaplan et al. 2020's 6N plus attention;
``Transformer.flops_per_token``), the quantity the BabyLM findings correlate with scores.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thrifty.errors import UserError
from thrifty.jsonl import read_jsonl

FINETUNE = "finetune_"
LABEL_EFFICIENCY = "label_efficiency_"
PROBE = "probe"
IMAGE_FINETUNE = "finetune_images"  # thrifty probe --finetune, not a text task's finetune_
DEPLOYMENTS = ("bandit", "darkroom")
BACKENDS = ("causal", "mntp", "mlm")


@dataclass
class RunData:
    """Everything a report can say about one run; fields are empty when the files are absent."""

    name: str
    path: Path
    config: dict = field(default_factory=dict)
    train_rows: list[dict] = field(default_factory=list)  # rows with "loss"
    val_rows: list[dict] = field(default_factory=list)  # rows with "val_*" keys
    zero_shot: dict[str, dict] = field(default_factory=dict)  # "<task>_<backend>" -> result
    finetune: dict[str, dict] = field(default_factory=dict)  # task -> result
    label_efficiency: dict[str, dict] = field(default_factory=dict)  # task -> result
    probes: dict[str, dict] = field(default_factory=dict)  # probe[_multilabel] -> result
    image_finetune: dict = field(default_factory=dict)  # image encoders fine-tuned on N labels
    ledger: dict = field(default_factory=dict)
    online_rows: list[dict] = field(default_factory=list)  # curve.jsonl of a `thrifty ppo` run
    online_result: dict = field(default_factory=dict)  # its result.json
    deployments: dict[str, dict] = field(default_factory=dict)  # bandit / darkroom -> result
    model: dict = field(default_factory=dict)  # params, flops_per_token, train_flops, step, ...
    problems: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (
            self.train_rows
            or self.val_rows
            or self.zero_shot
            or self.finetune
            or self.label_efficiency
            or self.probes
            or self.image_finetune
            or self.ledger
            or self.online_rows
            or self.deployments
            or self.model
        )


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"{path}: unreadable ({e})")
        return None


def read_metrics(path: Path, problems: list[str]) -> tuple[list[dict], list[dict]]:
    """Training rows and validation rows of metrics.jsonl; bad lines are skipped and counted
    (a run being written may end in half a line)."""
    train, val, bad = [], [], 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path}: unreadable ({e})")
        return [], []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(row, dict):
            bad += 1
        elif any(k.startswith("val_") for k in row):
            val.append(row)
        elif isinstance(row.get("loss"), int | float):
            train.append(row)
    if bad:
        problems.append(f"{path}: skipped {bad} unreadable line(s)")
    return train, val


def _read_evals(folder: Path, run: RunData) -> None:
    for path in sorted(folder.glob("*.json")):
        data = _read_json(path, run.problems)
        if not isinstance(data, dict):
            if data is not None:
                run.problems.append(f"{path}: expected a JSON object")
            continue
        stem = path.stem
        if stem == IMAGE_FINETUNE:
            run.image_finetune = data
        elif stem.startswith(FINETUNE):
            run.finetune[str(data.get("task") or stem.removeprefix(FINETUNE))] = data
        elif stem.startswith(PROBE):  # thrifty probe: an image encoder's frozen features
            run.probes[stem] = data
        elif stem in DEPLOYMENTS:  # a DPT policy deployed: thrifty bandit-eval / darkroom-eval
            run.deployments[stem] = data
        elif stem.startswith(LABEL_EFFICIENCY):
            task = str(data.get("task") or stem.removeprefix(LABEL_EFFICIENCY))
            run.label_efficiency[task] = data
        else:
            run.zero_shot[stem] = data


def _checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    ckpt = pointer.parent / pointer.read_text().strip()
    return ckpt if ckpt.is_dir() else None


def count_params(weights: Path) -> int:
    """Parameters in a safetensors file, from its header (no tensor is read)."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def _model_facts(run: RunData) -> None:
    from thrifty.runs import flops_per_token, read_config

    ckpt = _checkpoint(run.path)
    last = run.train_rows[-1] if run.train_rows else {}
    tokens = last.get("tokens")
    facts: dict[str, Any] = {"step": last.get("step"), "tokens_seen": tokens}
    if ckpt is not None:
        state = _read_json(ckpt / "state.json", run.problems) or {}
        facts["checkpoint"] = ckpt.name
        facts["step"] = state.get("step", facts["step"])
        # metrics.jsonl runs ahead of the latest checkpoint while a run trains
        tokens = tokens if tokens is not None else state.get("tokens_seen")
        facts["tokens_seen"] = tokens
        if not run.ledger and isinstance(state.get("ledger"), dict):
            run.ledger = state["ledger"]
        try:
            facts["params"] = count_params(ckpt / "model.safetensors")
            facts["flops_per_token"] = flops_per_token(state, read_config(ckpt))
        except Exception as e:  # a report is still useful without the model's size
            run.problems.append(f"{ckpt}: model size unavailable ({e})")
    if facts.get("flops_per_token") and tokens:
        facts["train_flops"] = facts["flops_per_token"] * tokens
    run.model = {k: v for k, v in facts.items() if v is not None}


def load_run(path: str | Path, name: str | None = None) -> RunData:
    """Read a run folder; a folder that does not exist is a UserError."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run folder not found: {path}")
    run = RunData(name or path.name, path)
    if (path / "config.yaml").is_file():
        try:
            run.config = yaml.safe_load((path / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            run.problems.append(f"{path / 'config.yaml'}: unreadable ({e})")
    if (path / "metrics.jsonl").is_file():
        run.train_rows, run.val_rows = read_metrics(path / "metrics.jsonl", run.problems)
    if (path / "ledger.json").is_file():
        ledger = _read_json(path / "ledger.json", run.problems)
        run.ledger = ledger if isinstance(ledger, dict) else {}
    if (path / "eval").is_dir():
        _read_evals(path / "eval", run)
    if (path / "curve.jsonl").is_file():  # an online RL run (thrifty.rl.ppo)
        try:
            run.online_rows = read_jsonl(path / "curve.jsonl")
        except UserError as e:
            run.problems.append(str(e))
        result = _read_json(path / "result.json", run.problems)
        run.online_result = result if isinstance(result, dict) else {}
    _model_facts(run)
    return run


def load_runs(paths: list[str | Path]) -> list[RunData]:
    """Read every run; labels are folder names, made unique with the parent folder."""
    paths = [Path(p) for p in paths]
    names = [p.resolve().name for p in paths]
    labels = [
        f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)
    ]
    labels = [
        f"{label} ({i + 1})" if labels.count(label) > 1 else label for i, label in enumerate(labels)
    ]
    runs = [load_run(p, label) for p, label in zip(paths, labels)]
    if all(r.empty() for r in runs):
        looked = "metrics.jsonl, ledger.json, checkpoints/latest, eval/*.json"
        problems = [p for r in runs for p in r.problems]
        detail = "; ".join(problems) if problems else f"none of {looked} found"
        where = ", ".join(str(r.path) for r in runs)
        raise UserError(f"nothing to report in {where}: {detail}")
    return runs


def zero_shot_score(result: dict) -> float | None:
    """The headline number of a zero-shot result (``score``, else BLiMP's ``macro``)."""
    for key in ("score", "macro", "accuracy"):
        value = result.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def sub_scores(result: dict) -> dict[str, float]:
    """Named sub-scores of a result: ``phenomena`` (BLiMP), else ``subtasks``, else the first
    dict of numbers or of ``{"score"|"accuracy": number}``."""
    candidates = [result.get("phenomena"), result.get("subtasks")]
    candidates += [v for k, v in result.items() if k not in ("phenomena", "subtasks", "ledger")]
    for value in candidates:
        if not isinstance(value, dict) or not value:
            continue
        out = {}
        for name, v in value.items():
            if isinstance(v, dict):
                v = v.get("score", v.get("accuracy"))
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[str(name)] = float(v)
        if len(out) == len(value):
            return out
    return {}
