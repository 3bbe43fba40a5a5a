"""Sweeps through submitit: the requeue hook resubmits the same `--resume auto` command, the
Slurm script carries the options, bad options are one line (exit 2), and two real nano runs
through submitit's LocalExecutor land in the index and are skipped the second time."""

import io
import json
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("submitit")

from thrifty.analysis.cluster import TrainJob, make_executor  # noqa: E402
from thrifty.cli.main import main  # noqa: E402

NANO = Path(__file__).parents[2] / "configs" / "nano.yaml"
ARGS = ["train", "sweeps/s/configs/s-seed_0.yaml", "train.threads=1", "--resume", "auto"]


def write_sweep(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump({"name": "s", "base": str(NANO), **sections}))
    return path


def fake_slurm(folder: Path, monkeypatch, partitions: str = "gpu") -> None:
    """sbatch / srun / sinfo stand-ins on PATH: sbatch accepts every job as job 4242."""
    folder.mkdir()
    scripts = {
        "sbatch": 'echo "Submitted batch job 4242"',
        "srun": "exit 0",
        "sinfo": f'echo "{partitions}"',
    }
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")


def test_checkpoint_stops_training_and_resubmits_the_same_command(tmp_path):
    job = TrainJob(ARGS, str(tmp_path / "run.log"), threads=1)
    # sleep(1) dies of SIGINT at any moment; a Python child would exit 1 once its own handler
    # is installed, which makes the exit code depend on how fast it started
    # (default SIGINT even where the test runs with it ignored, as under nohup or `cmd &`)
    job._proc = subprocess.Popen(
        ["sleep", "60"], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    delayed = pickle.loads(pickle.dumps(job.checkpoint()))  # submitit pickles it to requeue
    assert job._proc.wait(timeout=10) == -signal.SIGINT  # the preempted training stopped
    again = delayed.function
    assert isinstance(again, TrainJob) and delayed.args == () and delayed.kwargs == {}
    assert again.command() == job.command()
    assert again.command()[-2:] == ["--resume", "auto"]  # the requeued job resumes


def test_slurm_script_carries_the_options(tmp_path, monkeypatch):
    fake_slurm(tmp_path / "bin", monkeypatch)
    params = {
        "timeout_min": 90,
        "gpus_per_node": 1,
        "cpus_per_task": 4,
        "mem_gb": 16,
        "slurm_partition": "gpu",
        "slurm_account": "lab",
        "slurm_qos": None,
    }
    pool = make_executor("slurm", tmp_path / "submitit", params)
    job = pool.submit(TrainJob(ARGS, str(tmp_path / "run.log")))
    assert job.job_id == "4242"
    script = (tmp_path / "submitit" / "4242_submission.sh").read_text()
    for line in ("--partition=gpu", "--account=lab", "--time=90", "--gpus-per-node=1"):
        assert f"#SBATCH {line}\n" in script
    assert "--cpus-per-task=4" in script and "--mem=16GB" in script
    assert "--signal=USR2@" in script and "--qos" not in script  # preemption signal; None unset


def test_bad_cluster_options_are_one_line(tmp_path, monkeypatch, capsys):
    sweep = str(write_sweep(tmp_path / "s.yaml", grid={"train.seed": [0]}))
    base = ["sweep", sweep, "--dir", str(tmp_path / "out")]

    def error(argv) -> str:
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    assert "did you mean 'slurm'" in error([*base, "--executor", "slrum"])
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm here
    assert "sbatch" in error([*base, "--executor", "slurm", "--slurm-partition", "p"])
    fake_slurm(tmp_path / "bin", monkeypatch, partitions="gpu cpu")  # no default partition
    assert "--slurm-partition" in error([*base, "--executor", "slurm"])
    monkeypatch.setitem(sys.modules, "submitit", None)  # the cluster extra is not installed
    assert 'pip install "thrifty[cluster]"' in error([*base, "--executor", "local"])
    assert not (tmp_path / "out" / "index.jsonl").exists()  # nothing ran


@pytest.fixture(scope="module")
def nano_data(toy, tmp_path_factory) -> Path:
    from thrifty.data.prepare import prepare

    corpus = tmp_path_factory.mktemp("cluster-corpus")
    (corpus / "toy.train").write_text("\n".join(toy.texts(1500, seed=2)) + "\n")
    data = tmp_path_factory.mktemp("cluster-data")
    prepare([str(corpus)], data, budget_words=None, vocab_size=300, progress=False)
    return data


def test_local_executor_trains_and_skips_done_runs(nano_data, tmp_path):
    overrides = {
        "data.path": str(nano_data),
        "train.max_steps": 3,
        "train.eval_every": 0,
        "train.peak_flops": 1e11,
    }
    sweep_file = write_sweep(tmp_path / "s.yaml", overrides=overrides, grid={"train.seed": [0, 1]})
    out = tmp_path / "sweep"
    argv = ["sweep", str(sweep_file), "--dir", str(out), "--executor", "local"]
    argv += ["--jobs", "2", "--threads", "1", "--timeout-min", "10"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["done", "done"]
    assert all(r["executor"] == "local" and r["job_id"] for r in rows)
    assert all(r["metrics"]["step"] == 3 and r["metrics"]["val_loss"] > 0 for r in rows)
    assert any((out / "submitit").iterdir())  # submitit's own files stay in the sweep folder
    logs = {r["name"]: Path(r["log"]).read_text() for r in rows}

    assert main(argv) == 0  # done runs are skipped: no job, index and logs unchanged
    assert [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()] == rows
    assert {r["name"]: Path(r["log"]).read_text() for r in rows} == logs


def test_a_slurm_job_left_running_is_attached_not_submitted_again(tmp_path, monkeypatch):
    import submitit

    from thrifty.analysis.cluster import submit_sweep
    from thrifty.analysis.sweep import load_sweep, write_index

    class Job:  # an earlier driver's job, still running, then done
        def __init__(self, folder, job_id):
            self.job_id, self.polls = job_id, 0

        def done(self):
            self.polls += 1
            return self.polls > 2

        def result(self):
            return 0

    fake_slurm(tmp_path / "bin", monkeypatch, partitions="gpu* cpu")  # a default partition
    (tmp_path / "bin" / "sbatch").write_text("#!/bin/sh\nexit 1\n")  # a submission would fail
    monkeypatch.setattr(submitit, "SlurmJob", Job)
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", grid={"train.seed": [0]}), tmp_path / "o")
    runs = sweep.build()
    left = {"name": runs[0].name, "status": "running", "executor": "slurm", "job_id": "77"}
    write_index(sweep.sweep_dir, {runs[0].name: left})
    rows = submit_sweep(sweep, runs, executor="slurm", params={}, poll_s=0, stream=io.StringIO())
    assert rows[runs[0].name]["status"] == "done" and rows[runs[0].name]["job_id"] == "77"


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_resumes(nano_data, tmp_path):
    """submitit's own protocol end to end: USR2 to a running job, checkpoint(), requeue."""
    import submitit

    from thrifty.analysis.sweep import load_sweep, train_command, write_configs

    overrides = {"data.path": str(nano_data), "train.max_steps": 100000, "train.eval_every": 0}
    overrides |= {"train.checkpoint_every": 5, "train.peak_flops": 1e11}
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", overrides=overrides), tmp_path / "o")
    (run,) = sweep.build()
    write_configs([run])
    log = tmp_path / "run.log"
    # a time limit of 20 s whose USR2 comes 5 s early: the signal Slurm sends before preempting
    # (15 s leave a loaded machine time to start the run and write its first checkpoint; the
    # local executor requeues on time-outs only, so the test cannot signal as soon as it has one)
    pool = submitit.LocalExecutor(tmp_path / "submitit", max_num_timeout=1)
    pool.update_parameters(timeout_min=20 / 60, signal_delay_s=5)
    job = pool.submit(TrainJob(train_command(run, 1)[1:], str(log), threads=1))

    def wait_for(ready, what: str) -> None:
        deadline = time.monotonic() + 120
        while not ready():
            assert time.monotonic() < deadline and not job.done(), f"no {what}: {log.read_text()}"
            time.sleep(0.2)

    wait_for(lambda: (run.run_dir / "checkpoints" / "latest").is_file(), "checkpoint")
    wait_for(lambda: "resumed from" in log.read_text(), "requeue")
    job.cancel()  # and the training process goes with it
    deadline = time.monotonic() + 30
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.done()
    time.sleep(1)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(run.config_path) not in ps  # no training process left behind
