"""Sweeps as code: a SWEEP.yaml (base recipe + grid / explicit runs + optional data ladder)
becomes a list of named, validated ``RunConfig``s, each one `thrifty train` command.

Format (a worked example is ``configs/sweeps/example.yaml``)::

    name: wd-epochs          # sweep name; runs are called <name>-<key>_<value>-...
    base: ../nano.yaml       # recipe every run starts from (relative to this file)
    overrides: {train.threads: 1}          # for every run
    grid:                                  # every combination
      train.weight_decay: [0.1, 0.8]
      train.max_epochs: [1, 2, 4]
    runs: [{train.seed: 0}, {train.seed: 1}]   # optional; each is combined with the grid
    data:                                  # optional data ladder, prepared by the sweep
      sources: [../../corpus]              # relative to this file
      budgets: [250k, 500k, 1M]            # adds the axis data.budget_words
      vocab_size: 4096
      shared_tokenizer: true               # tokenizer of the smallest budget, reused by all
                                           # (charged to each larger rung's ledger on top)
    search: {...}                          # optional; see analysis/search.py and --search
    nars: {...}                            # optional; see analysis/nars_search.py and --nars

A grid axis ``data.path: [folderA, folderB]`` points at datasets prepared elsewhere instead.
Run names depend only on a run's own grid / explicit keys, so adding a value to an axis
never renames the runs that exist. Everything lives in the sweep folder::

    <sweep_dir>/configs/<run>.yaml   the resolved config `thrifty train` runs
    <sweep_dir>/runs/<run>/          the run folders
    <sweep_dir>/logs/<run>.log       each run's console output
    <sweep_dir>/data/budget_<N>/     the data ladder
    <sweep_dir>/index.jsonl          name, overrides, status, final metrics (one row per run)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.atomic import write_text_atomic
from thrifty.config import RunConfig, dump_config, load_config, read_yaml
from thrifty.errors import UserError
from thrifty.jsonl import read_jsonl
from thrifty.registry import suggest

KEYS = ("name", "base", "sweep_dir", "overrides", "grid", "runs", "data", "search", "nars")
DATA_KEYS = (
    "sources",
    "budgets",
    "vocab_size",
    "shared_tokenizer",
    "seed",
    "selection",
    "valid_fraction",
)
BUDGET_AXIS = "data.budget_words"
INDEX = "index.jsonl"


@dataclass
class DataLadder:
    sources: list[Path]
    budgets: list[int]
    vocab_size: int = 8192
    shared_tokenizer: bool = True
    seed: int = 0
    selection: str = "sample"
    valid_fraction: float = 0.01

    def folder(self, sweep_dir: Path, budget: int) -> Path:
        return sweep_dir / "data" / f"budget_{budget}"


@dataclass
class SweepRun:
    name: str
    overrides: dict[str, Any]
    """The keys that define this run (grid point and explicit run), for names and the index."""
    cfg: RunConfig
    config_path: Path

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir


@dataclass
class Sweep:
    name: str
    base: Path | None
    sweep_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    data: DataLadder | None = None
    search: dict[str, Any] | None = None
    nars: dict[str, Any] | None = None

    def points(self) -> list[dict[str, Any]]:
        """Explicit runs × grid combinations, in file order."""
        axes = list(self.grid.items())
        if self.data is not None:
            axes.append((BUDGET_AXIS, self.data.budgets))
        combos = [dict(zip([k for k, _ in axes], vals)) for vals in _product(axes)]
        return [{**run, **combo} for run in (self.runs or [{}]) for combo in combos]

    def build(self, points: list[dict[str, Any]] | None = None) -> list[SweepRun]:
        """Named, validated runs (not yet written); ``points`` default to :meth:`points`."""
        points = self.points() if points is None else points
        names = run_names(self.name, points)
        runs = []
        for name, point in zip(names, points):
            merged = {**self.overrides, **point}
            if BUDGET_AXIS in merged:
                if self.data is None:
                    raise UserError(f"{BUDGET_AXIS} needs a data: section with sources")
                budget = merged.pop(BUDGET_AXIS)
                merged["data.path"] = str(self.data.folder(self.sweep_dir, budget))
            merged |= {"name": name, "runs_dir": str(self.sweep_dir / "runs")}
            try:
                cfg = load_config(self.base, [f"{k}={json.dumps(v)}" for k, v in merged.items()])
            except UserError as e:
                raise UserError(f"sweep {self.name}, run {name}: {e}") from None
            runs.append(SweepRun(name, point, cfg, self.sweep_dir / "configs" / f"{name}.yaml"))
        return runs


def _product(axes: list[tuple[str, list]]):
    return itertools.product(*[values for _, values in axes]) if axes else [()]


def _format(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, str) and ("/" in value or "\\" in value):
        text = Path(value).name  # a data folder: its name is what tells runs apart
    else:
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return re.sub(r"[^A-Za-z0-9._+]+", "_", text).strip("_") or "x"


def run_names(sweep: str, points: list[dict[str, Any]]) -> list[str]:
    """``<sweep>-<key>_<value>-...`` per point (key = last dotted part unless ambiguous);
    points whose names collide get a short hash of their overrides appended."""
    keys = {k for p in points for k in p}
    tails: dict[str, list[str]] = {}
    for key in keys:
        tails.setdefault(key.rsplit(".", 1)[-1], []).append(key)
    short = {
        k: (k.rsplit(".", 1)[-1] if len(tails[k.rsplit(".", 1)[-1]]) == 1 else k) for k in keys
    }
    names = []
    for point in points:
        parts = [f"{short[k]}_{_format(v)}" for k, v in point.items()]
        names.append("-".join([sweep, *parts]))
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    for i, (name, point) in enumerate(zip(names, points)):
        if seen[name] > 1:
            digest = hashlib.sha1(json.dumps(point, sort_keys=True).encode()).hexdigest()[:6]
            names[i] = f"{name}-{digest}"
    if len(set(names)) != len(names):
        raise UserError(f"sweep {sweep}: two runs have identical overrides")
    return names


def load_sweep(path: str | Path, sweep_dir: str | Path | None = None) -> Sweep:
    """Read and check a SWEEP.yaml; paths in it count from the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file not found: {path}")
    raw = read_yaml(path)
    for key in raw:
        if key not in KEYS:
            raise UserError(f"{path}: unknown key {key!r}{suggest(key, KEYS)}")
    here = path.parent
    name = str(raw.get("name") or path.stem)
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise UserError(f"{path}: name {name!r} may use letters, digits and . _ + - only")
    base = here / raw["base"] if raw.get("base") else None
    grid = _mapping(raw.get("grid"), path, "grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{path}: grid.{key} must be a non-empty list")
    runs = raw.get("runs") or []
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise UserError(f"{path}: runs must be a list of mappings of dotted keys")
    return Sweep(
        name=name,
        base=base,
        sweep_dir=Path(sweep_dir) if sweep_dir else Path(raw.get("sweep_dir") or f"sweeps/{name}"),
        overrides=_mapping(raw.get("overrides"), path, "overrides"),
        grid=grid,
        runs=runs,
        data=_data(raw.get("data"), path) if raw.get("data") else None,
        search=_mapping(raw.get("search"), path, "search") or None,
        nars=_mapping(raw.get("nars"), path, "nars") or None,
    )


def _mapping(value: Any, path: Path, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{path}: {key} must be a mapping")
    return dict(value)


def _data(raw: Any, path: Path) -> DataLadder:
    from thrifty.cli.numbers import parse_count

    raw = _mapping(raw, path, "data")
    for key in raw:
        if key not in DATA_KEYS:
            raise UserError(f"{path}: unknown key data.{key}{suggest(key, DATA_KEYS)}")
    if not raw.get("sources") or not raw.get("budgets"):
        raise UserError(f"{path}: data needs sources and budgets")
    try:
        budgets = sorted({parse_count(b) for b in raw["budgets"]})
    except UserError as e:
        raise UserError(f"{path}: data.budgets: {e}") from None
    options = {k: raw[k] for k in DATA_KEYS[2:] if k in raw}
    sources = [path.parent / s for s in raw["sources"]]
    return DataLadder(sources=sources, budgets=budgets, **options)


def _missing_rungs(sweep: Sweep) -> list[tuple[int, Path, Path | None]]:
    """(budget, folder, tokenizer to reuse) of each rung not prepared yet, smallest first."""
    ladder = sweep.data
    if ladder is None:
        return []
    first = ladder.folder(sweep.sweep_dir, ladder.budgets[0]) / "tokenizer.json"
    rungs = []
    for budget in ladder.budgets:
        out = ladder.folder(sweep.sweep_dir, budget)
        if not (out / "manifest.json").is_file():
            shared = ladder.shared_tokenizer and budget != ladder.budgets[0]
            rungs.append((budget, out, first if shared else None))
    return rungs


def prepare_commands(sweep: Sweep) -> list[list[str]]:
    """`thrifty prepare` commands for the missing rungs of the data ladder, in order."""
    ladder, commands = sweep.data, []
    for budget, out, tokenizer in _missing_rungs(sweep):
        cmd = ["thrifty", "prepare", *map(str, ladder.sources), "--out", str(out)]
        cmd += ["--budget-words", str(budget), "--vocab-size", str(ladder.vocab_size)]
        cmd += ["--seed", str(ladder.seed), "--selection", ladder.selection]
        cmd += ["--valid-fraction", str(ladder.valid_fraction), "--quiet"]
        commands.append(cmd + (["--tokenizer", str(tokenizer)] if tokenizer else []))
    return commands


def prepare_ladder(sweep: Sweep) -> None:
    """Prepare every missing rung (what :func:`prepare_commands` prints). A shared tokenizer
    makes losses comparable across budgets: the per-token loss depends on the tokenizer."""
    from thrifty.data.prepare import prepare

    ladder = sweep.data
    for budget, out, tokenizer in _missing_rungs(sweep):
        prepare(
            [str(s) for s in ladder.sources],
            out,
            budget_words=budget,
            selection=ladder.selection,
            seed=ladder.seed,
            vocab_size=ladder.vocab_size,
            valid_fraction=ladder.valid_fraction,
            tokenizer_path=tokenizer,
            progress=False,
        )


def write_configs(runs: list[SweepRun]) -> None:
    """Write each run's resolved config (unchanged files are left alone)."""
    for run in runs:
        run.config_path.parent.mkdir(parents=True, exist_ok=True)
        text = dump_config(run.cfg)
        if not run.config_path.is_file() or run.config_path.read_text() != text:
            write_text_atomic(run.config_path, text)


def config_sha(run: SweepRun) -> str:
    return hashlib.sha256(dump_config(run.cfg).encode()).hexdigest()


def train_command(run: SweepRun, threads: int | None = None) -> list[str]:
    """The `thrifty train` command of a run; ``--resume auto`` continues an interrupted one."""
    cmd = ["thrifty", "train", str(run.config_path)]
    return cmd + ([f"train.threads={threads}"] if threads else []) + ["--resume", "auto"]


def shell_line(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def read_index(sweep_dir: Path) -> dict[str, dict]:
    """Rows of ``index.jsonl`` by run name (empty when the sweep has not run yet)."""
    path = Path(sweep_dir) / INDEX
    rows = {}
    for n, row in enumerate(read_jsonl(path), 1):
        if not isinstance(row.get("name"), str):
            raise UserError(f"{path}: row {n} has no run name (the file is damaged)")
        rows[row["name"]] = row
    return rows


def write_index(sweep_dir: Path, rows: dict[str, dict]) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows.values())
    write_text_atomic(sweep_dir / INDEX, text)
