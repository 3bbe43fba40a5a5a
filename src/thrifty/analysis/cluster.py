"""Sweeps on a cluster: each run is one Slurm job, submitted through submitit and requeued when
it is preempted or reaches its time limit.

Why submitit: it is the maintained library for sending Python callables to Slurm. It writes the
sbatch script, tracks job ids and logs, and implements the USR2 protocol by which a preempted or
timed-out job checkpoints and requeues itself; its LocalExecutor runs the same jobs on one
machine, which is how the tests cover this path. Only this module imports it, and only when an
executor is made, so thrifty works without the ``cluster`` extra.

thrifty keeps its own bookkeeping (``runner.plan``): the same ``index.jsonl``, done runs
skipped, interrupted ones continued, failed ones retried only when asked. A job runs the run's
`thrifty train CONFIG --resume auto` as a child process (:class:`TrainJob`). On preemption
submitit calls :meth:`TrainJob.checkpoint`, which stops the child and resubmits the same
command, so the requeued job resumes from the run's last checkpoint. submitit's files (job
pickles, stdout/stderr) go to ``<sweep_dir>/submitit/``; each run's console output is appended to
``<sweep_dir>/logs/<run>.log``, as with the process runner.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from thrifty.analysis.results import final_metrics
from thrifty.analysis.runner import Status, outcome, plan, tally
from thrifty.analysis.sweep import Sweep, SweepRun, read_index, train_command, write_index
from thrifty.errors import UserError
from thrifty.registry import suggest

EXECUTORS = ("process", "local", "slurm")
"""``process``: the local process runner (analysis/runner.py); ``local`` and ``slurm``: submitit."""
EXTRA = 'pip install "thrifty[cluster]"'
PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


def check_executor(name: str) -> None:
    if name not in EXECUTORS:
        raise UserError(
            f"--executor: unknown executor {name!r}{suggest(name, list(EXECUTORS))} "
            f"(known: {', '.join(EXECUTORS)})"
        )


@dataclass
class TrainJob:
    """What a submitit job runs: one `thrifty train ... --resume auto`, output to ``log``."""

    args: list[str]
    """`thrifty train` arguments (``train_command(run)[1:]``), ending in ``--resume auto``."""
    log: str
    threads: int | None = None

    def command(self) -> list[str]:
        # the job's own interpreter: submitit starts jobs with the submitting one
        return [sys.executable, "-m", "thrifty.cli.main", *self.args]

    def __call__(self) -> int:
        env = dict(os.environ)
        if self.threads:
            env |= {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_child_setup(),
            )
            try:
                return self._proc.wait()
            finally:  # requeued or cancelled: the training process must not outlive its job
                _stop(self._proc)
                try:
                    self._proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's requeue hook: stop training (checkpoints on disk are atomic, so the last
        one is whole) and resubmit the same command, whose ``--resume auto`` continues it."""
        from submitit.helpers import DelayedSubmission

        proc = getattr(self, "_proc", None)
        if proc is not None:
            # no wait here: this runs in a signal handler that interrupted Popen.wait in
            # __call__, whose lock it holds; __call__'s finally reaps the child as the job exits
            _stop(proc)
        # a fresh instance: the child process handle does not pickle
        return DelayedSubmission(TrainJob(self.args, self.log, self.threads))


def _stop(proc: subprocess.Popen) -> None:
    """Stop a training process: SIGINT, the one stop signal it does not ignore (exit 130)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)


def _child_setup():
    """What the training process sets before it starts. Slurm sends SIGTERM and USR2 to every
    process of a job it preempts, times out or cancels: the child ignores both, so that
    submitit's handler in the job process decides. On USR2 that handler stops the child and
    requeues; on SIGTERM it waits for USR2 or the scheduler's SIGKILL (after which Slurm requeues
    a preempted job). A child that exited on SIGTERM would end the job early, with a result,
    while Slurm still requeues it. And the child dies with the job process (Linux), so a killed
    job never leaves a second writer training into the run folder."""
    prctl = None
    if sys.platform == "linux":
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def setup() -> None:
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # SIGINT is how the child is stopped; a job started in the background of a shell
        # inherits it ignored, which Python would keep
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return setup


def make_executor(name: str, folder: Path, params: dict[str, Any]):
    """A submitit executor (``local`` or ``slurm``) writing to ``folder``. ``params`` use
    submitit's AutoExecutor names (timeout_min, gpus_per_node, cpus_per_task, mem_gb,
    slurm_partition, slurm_account, slurm_qos); None means unset."""
    check_executor(name)
    if name == "process":
        raise UserError("--executor process runs processes here; it has no submitit executor")
    try:
        import submitit
    except ImportError:
        raise UserError(f"--executor {name} needs submitit: {EXTRA}") from None
    params = {k: v for k, v in params.items() if v is not None}
    if name == "slurm":
        if shutil.which("sbatch") is None or shutil.which("srun") is None:
            raise UserError("--executor slurm: sbatch / srun not found (run on a Slurm login node)")
        if not params.get("slurm_partition") and not default_partition():
            raise UserError("--executor slurm needs --slurm-partition (no default partition)")
    pool = submitit.AutoExecutor(folder=folder, cluster=name)
    pool.update_parameters(**params)
    return pool


def default_partition() -> str | None:
    """The cluster's default partition (``sinfo`` marks it with ``*``), or None."""
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    marked = [p for p in out.split() if p.endswith("*")]
    return marked[0].rstrip("*") if marked else None


def submit_sweep(
    sweep: Sweep,
    runs: list[SweepRun],
    *,
    executor: str = "local",
    params: dict[str, Any] | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    retry_failed: bool = False,
    stream: IO = sys.stderr,
    poll_s: float = 1.0,
) -> dict[str, dict]:
    """Train ``runs`` (skipping finished ones) as submitit jobs, at most ``jobs`` in flight
    (None: all at once, the scheduler queues them); wait for them; return their index rows."""
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    sweep_dir = sweep.sweep_dir
    pool = make_executor(executor, sweep_dir / "submitit", params or {})
    before = read_index(sweep_dir)
    rows, queue = plan(sweep, runs, retry_failed)
    names = [r.name for r in runs]
    status = Status(sweep.name, len(runs), jobs or max(len(queue), 1), stream)
    running: dict[str, tuple[Any, float]] = {}
    for run in list(queue):
        job = _attach(executor, pool.folder, before.get(run.name, {}))
        if job is not None:  # still queued or running from an earlier invocation
            queue.remove(run)
            running[run.name] = (job, time.perf_counter())
            rows[run.name] |= {"status": "running", "executor": executor, "job_id": job.job_id}
    write_index(sweep_dir, rows)
    try:
        while queue or running:
            while queue and (jobs is None or len(running) < jobs):
                run = queue.pop(0)
                row = rows[run.name]
                pool.update_parameters(name=run.name)
                job = pool.submit(TrainJob(train_command(run, threads)[1:], row["log"], threads))
                row |= {"status": "running", "executor": executor, "job_id": job.job_id}
                running[run.name] = (job, time.perf_counter())
                write_index(sweep_dir, rows)
            for name in [n for n, (job, _) in running.items() if job.done()]:
                job, start = running.pop(name)
                _finish(job, start, rows[name], Path(rows[name]["run_dir"]), status)
                write_index(sweep_dir, rows)
            status.show(*tally(rows, names))
            if running:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        for name, (job, _) in running.items():
            job.cancel(check=False)
            rows[name]["status"] = "pending"  # continued with --resume auto next time
        write_index(sweep_dir, rows)
        status.close()
        raise
    status.show(*tally(rows, names))
    status.close()
    return {n: rows[n] for n in names}


def _attach(executor: str, folder: Path, row: dict):
    """The Slurm job an earlier invocation left running for this run, or None. Without it a
    killed driver would make the next one submit a second job training the same folder."""
    if executor != "slurm" or row.get("executor") != "slurm" or row.get("status") != "running":
        return None
    import submitit

    job = submitit.SlurmJob(folder=folder, job_id=str(row.get("job_id")))
    return None if job.done() else job


def _finish(job: Any, start: float, row: dict, run_dir: Path, status: Status) -> None:
    seconds = time.perf_counter() - start
    try:
        code = job.result()
    except Exception as e:  # the job itself failed: cancelled, out of memory, out of requeues
        row["error"] = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
        row["status"] = "failed"
    else:
        row["returncode"] = code
        row["status"] = outcome(code)
        if code == 0:
            status.durations.append(seconds)
    row["seconds"] = round(seconds, 1)
    row["metrics"] = final_metrics(run_dir)
