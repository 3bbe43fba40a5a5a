"""Run a sweep's `thrifty train` commands as parallel processes, with a live one-line status.

Each run is its own process (``python -m thrifty.cli.main train CONFIG --resume auto``), so a
crash stays contained and a killed sweep leaves runs that resume exactly. The index
(``<sweep_dir>/index.jsonl``) is rewritten atomically whenever a run changes state; runs it
lists as done are skipped, interrupted ones are continued, failed ones are retried only when
asked. A done run whose resolved config has changed since is an error, not a silent rerun.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from thrifty.analysis.results import final_metrics
from thrifty.analysis.search import EvalCache, SearchResult, SearchSpace, coordinate_descent
from thrifty.analysis.sweep import (
    Sweep,
    SweepRun,
    config_sha,
    read_index,
    train_command,
    write_configs,
    write_index,
)
from thrifty.errors import UserError


@dataclass
class _Job:
    run: SweepRun
    proc: subprocess.Popen
    log: IO
    start: float


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Status:
    """One line: done / running / failed / pending and an ETA from this session's run times."""

    def __init__(self, name: str, total: int, jobs: int, stream: IO) -> None:
        self.name, self.total, self.jobs, self.stream = name, total, jobs, stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.durations: list[float] = []
        self.last = ""

    def show(self, done: int, running: int, failed: int, pending: int) -> None:
        eta = "?"
        if self.durations:
            mean = sum(self.durations) / len(self.durations)
            eta = _duration(mean * (pending + 0.5 * running) / max(self.jobs, 1))
        elif not running and not pending:
            eta = "0m00s"
        line = (
            f"sweep {self.name}: {done}/{self.total} done, {running} running, {failed} failed, "
            f"{pending} pending, ETA {eta}"
        )
        if line == self.last:
            return
        self.last = line
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def plan(sweep: Sweep, runs: list[SweepRun], retry_failed: bool) -> tuple[dict, list[SweepRun]]:
    """Write the configs and the index; return its rows and the runs still to train (every
    run not done, and failed ones only with ``retry_failed``), each now marked pending."""
    sweep_dir = sweep.sweep_dir
    write_configs(runs)
    rows = read_index(sweep_dir)
    queue = []
    for run in runs:
        sha = config_sha(run)
        row = rows.get(run.name)
        if row and row.get("status") == "done":
            if row.get("config_sha256") != sha:
                raise UserError(
                    f"run {run.name} finished with a different config than {run.config_path} "
                    f"now resolves to; delete {run.run_dir} and its index row, or rename the sweep"
                )
            continue
        if row and row.get("status") == "failed" and not retry_failed:
            continue
        rows[run.name] = {
            "name": run.name,
            "overrides": run.overrides,
            "status": "pending",
            "config": str(run.config_path),
            "config_sha256": sha,
            "run_dir": str(run.run_dir),
            "log": str(sweep_dir / "logs" / f"{run.name}.log"),
        }
        queue.append(run)
    write_index(sweep_dir, rows)
    return rows, queue


def outcome(code: int) -> str:
    """Index status of a `thrifty train` exit code."""
    # killed by Ctrl-C or a scheduler's SIGTERM: interrupted, continued next time, not failed
    interrupted = code in (130, 143, -2, -15)
    return "done" if code == 0 else "pending" if interrupted else "failed"


def tally(rows: dict[str, dict], names: list[str]) -> tuple[int, int, int, int]:
    """(done, running, failed, pending) among ``names``, for :class:`Status`."""
    mine = [rows[n]["status"] for n in names]
    return tuple(mine.count(s) for s in ("done", "running", "failed", "pending"))


def run_sweep(
    sweep: Sweep,
    runs: list[SweepRun],
    *,
    jobs: int = 1,
    threads: int | None = None,
    retry_failed: bool = False,
    stream: IO = sys.stderr,
    poll_s: float = 0.2,
) -> dict[str, dict]:
    """Run ``runs`` (skipping finished ones) with ``jobs`` processes; return their index rows."""
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    sweep_dir = sweep.sweep_dir
    rows, queue = plan(sweep, runs, retry_failed)
    names = [r.name for r in runs]
    status = Status(sweep.name, len(runs), jobs, stream)

    def counts() -> tuple[int, int, int, int]:
        return tally(rows, names)

    running: list[_Job] = []
    env = dict(os.environ)
    if threads:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    try:
        while queue or running:
            while queue and len(running) < jobs:
                run = queue.pop(0)
                running.append(_start(run, rows[run.name], threads, env))
                write_index(sweep_dir, rows)
            for job in [j for j in running if j.proc.poll() is not None]:
                running.remove(job)
                _finish(job, rows[job.run.name], status)
                write_index(sweep_dir, rows)
            status.show(*counts())
            time.sleep(poll_s if running else 0)
    except KeyboardInterrupt:
        for job in running:
            job.proc.terminate()
        for job in running:
            job.proc.wait()
            job.log.close()
            rows[job.run.name]["status"] = "pending"  # continued with --resume auto next time
        write_index(sweep_dir, rows)
        status.close()
        raise
    status.show(*counts())
    status.close()
    return {n: rows[n] for n in (r.name for r in runs)}


def _start(run: SweepRun, row: dict, threads: int | None, env: dict) -> _Job:
    log_path = Path(row["log"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a")
    cmd = [sys.executable, "-m", "thrifty.cli.main", *train_command(run, threads)[1:]]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    row["status"] = "running"
    return _Job(run, proc, log, time.perf_counter())


def _finish(job: _Job, row: dict, status: Status) -> None:
    job.log.close()
    seconds = time.perf_counter() - job.start
    code = job.proc.returncode
    row["returncode"] = code
    row["seconds"] = round(seconds, 1)
    row["status"] = outcome(code)
    row["metrics"] = final_metrics(job.run.run_dir)
    if code == 0:
        status.durations.append(seconds)


def search_sweep(
    sweep: Sweep,
    *,
    jobs: int = 1,
    threads: int | None = None,
    stream: IO = sys.stderr,
    execute: Callable[..., dict[str, dict]] | None = None,
) -> SearchResult:
    """Coordinate descent (analysis/search.py) where each point is a sweep run; the cache is
    ``<sweep_dir>/search.jsonl``. The ``search:`` section: start, factor, bounds, metric,
    max_evals. The sweep's grid and runs are not used. ``execute`` trains a batch of runs
    (default :func:`run_sweep`; the cluster executor has the same signature)."""
    spec = dict(sweep.search or {})
    if not spec:
        raise UserError(f"sweep {sweep.name} has no search: section")
    metric = spec.pop("metric", "val_loss")
    max_evals = spec.pop("max_evals", None)
    known = {"start", "factor", "bounds"}
    unknown = set(spec) - known
    if unknown:
        raise UserError(
            f"search: unknown key {sorted(unknown)[0]!r} (known: metric, max_evals, "
            f"{', '.join(sorted(known))})"
        )
    bounds = {k: tuple(map(float, v)) for k, v in (spec.get("bounds") or {}).items()}
    space = SearchSpace(
        {k: float(v) for k, v in (spec.get("start") or {}).items()},
        float(spec.get("factor", 2.0)),
        bounds,
    )
    cache = EvalCache(sweep.sweep_dir / "search.jsonl")

    def evaluate(points: list[dict[str, float]]) -> list[float | None]:
        runs = sweep.build(points)
        rows = (execute or run_sweep)(
            sweep, runs, jobs=jobs, threads=threads, retry_failed=True, stream=stream
        )
        losses: list[float | None] = []
        for run in runs:
            row = rows[run.name]
            if row["status"] == "failed":
                losses.append(float("inf"))  # diverged or crashed: never the optimum
            elif metric not in row.get("metrics", {}):
                raise UserError(f"run {run.name} finished without metric {metric!r}")
            else:
                losses.append(float(row["metrics"][metric]))
        return losses

    return coordinate_descent(evaluate, space, cache, max_evals=max_evals)
