"""What a finished run folder says about itself: final metrics, size, data words.

Read from files only (``metrics.jsonl``, ``ledger.json``, ``config.yaml``, ``eval/*.json``), so
sweeps, fits and ensembles work on runs trained anywhere, by any process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from thrifty.config import RunConfig, from_dict, read_yaml
from thrifty.errors import UserError
from thrifty.jsonl import read_jsonl


def final_metrics(run_dir: str | Path) -> dict:
    """The last validation row of ``metrics.jsonl`` (val_* keys, step, words), the last
    training loss, and the macro accuracy of every ``eval/blimp_*.json``."""
    run_dir = Path(run_dir)
    out: dict = {}
    path = run_dir / "metrics.jsonl"
    for row in read_jsonl(path):  # a run still being written may end in a torn line
        if any(k.startswith("val_") for k in row):
            out.update({k: v for k, v in row.items() if k.startswith("val_")})
            out["step"], out["words"] = row.get("step"), row.get("words")
        elif "loss" in row:
            out["train_loss"] = row["loss"]
    for file in sorted((run_dir / "eval").glob("blimp_*.json")):
        try:
            out[file.stem] = json.loads(file.read_text())["macro"]
        except (json.JSONDecodeError, KeyError, OSError):
            continue
    return out


def run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir}: not a run folder (no config.yaml)")
    return from_dict(RunConfig, read_yaml(path))


def num_params(cfg: RunConfig) -> int:
    """Parameters of the run's model, counted without allocating it."""
    import torch

    from thrifty.models.transformer import Transformer

    with torch.device("meta"):
        return Transformer(cfg.model).num_params()


def train_words(run_dir: str | Path) -> int:
    """Distinct training words the run learned from (the data size D of a data ladder)."""
    path = Path(run_dir) / "ledger.json"
    if not path.is_file():
        raise UserError(f"{run_dir}: no ledger.json (has the run started?)")
    ledger = json.loads(path.read_text())
    return int(ledger.get("prepared_words", {}).get("train", 0))


X_KINDS = ("params", "k", "words")


def _expand(paths: list[str | Path]) -> list[Path]:
    """Run folders, ensemble result files, and sweep folders (their done runs, via the index)."""
    found = []
    for path in map(Path, paths):
        index = path / "index.jsonl"
        if path.is_dir() and index.is_file() and not (path / "config.yaml").is_file():
            for row in read_jsonl(index):
                if row.get("status") == "done":
                    found.append(Path(row["run_dir"]))
        elif path.exists():
            found.append(path)
        else:
            raise UserError(f"{path}: no such run, sweep folder or result file")
    return found


def collect_points(
    paths: list[str | Path],
    x: str,
    metric: str = "val_loss",
    evaluate: Callable[[Path], float] | None = None,
) -> list[tuple[float, float, str]]:
    """(x, loss, source) per run or ensemble result. ``x``: params (model size), words
    (distinct training words) or k (ensemble size; from `thrifty ensemble --out` files).
    ``evaluate(run_dir)`` replaces the run's own final ``metric``, e.g. to score every run on
    one common held-out set (each budget of a data ladder has its own validation split)."""
    if x not in X_KINDS:
        raise UserError(f"--x must be one of {', '.join(X_KINDS)}, got {x!r}")
    points = []
    for path in _expand(paths):
        if path.is_file():
            try:
                result = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise UserError(f"{path}: not a JSON result file") from None
            if x != "k" or "k" not in result:
                raise UserError(f"{path}: a result file gives ensemble size points (--x k) only")
            if metric not in result:
                raise UserError(f"{path}: no {metric!r} in this result")
            points.append((float(result["k"]), float(result[metric]), str(path)))
            continue
        if x == "k":
            raise UserError(
                f"{path}: for --x k pass ensemble results (thrifty ensemble ... --out FILE.json), "
                "K = 1 included, so every point is scored on the same windows"
            )
        if evaluate is not None:
            loss = evaluate(path)
        else:
            metrics = final_metrics(path)
            if metric not in metrics:
                raise UserError(f"{path}: metrics.jsonl has no {metric!r} (has the run finished?)")
            loss = metrics[metric]
        value = num_params(run_config(path)) if x == "params" else train_words(path)
        points.append((float(value), float(loss), str(path)))
    if not points:
        raise UserError("no points: the given paths hold no finished runs")
    return points
