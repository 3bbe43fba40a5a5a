import json
import shutil
import sys
import time

import pytest

from thrifty.config import TRACKERS
from thrifty.errors import UserError
from thrifty.train.loop import train
from thrifty.train.metrics import MetricsLog
from thrifty.train.tracking import OPENERS, TensorBoardSink, WandbSink

FAST = ("train.peak_flops=1e12",)  # no matmul timing at start


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def crash_after(run_dir, step: int) -> None:
    """Leave the run as a crash after ``step``'s checkpoint would: later rows, no later ckpt."""
    ckpts = run_dir / "checkpoints"
    for folder in ckpts.glob("step_*"):
        if int(folder.name.removeprefix("step_")) > step:
            shutil.rmtree(folder)
    (ckpts / "latest").write_text(f"step_{step:08d}")


def scalars(folder, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)], events.Tags()


def test_tensorboard_mirrors_metrics_jsonl_and_resume_continues_the_folder(nano_cfg, blimp_dir):
    pytest.importorskip("tensorboard")  # the track extra (dev installs it)
    blimp = (
        f"eval.blimp_data={blimp_dir}",
        "eval.max_pairs_per_paradigm=1",
        "model.max_seq_len=160",
    )
    cfg = nano_cfg("train.log_to=[tensorboard]", *blimp, *FAST)  # 20 steps, log every 5, eval 10
    train(cfg)
    run, board = cfg.run_dir, cfg.run_dir / "tensorboard"
    jsonl = rows(run)
    loss, tags = scalars(board, "loss")
    assert loss == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in jsonl if "loss" in r]
    val, _ = scalars(board, "val_loss")
    assert val == [(r["step"], pytest.approx(r["val_loss"])) for r in jsonl if "val_loss" in r]
    assert {"lr", "grad_norm", "tokens_per_s", "mfu", "words", "epoch"} <= set(tags["scalars"])
    assert {"config/text_summary", "ledger/text_summary"} <= set(tags["tensors"])
    (score,) = [r["blimp_causal"] for r in jsonl if "blimp_causal" in r]  # at the end of training
    assert scalars(board, "blimp_causal")[0] == [(20, pytest.approx(score))]

    crash_after(run, 10)  # the run had logged steps 15 and 20 past its checkpoint
    train(cfg, resume="auto")
    assert [p.name for p in board.iterdir() if p.is_dir()] == []  # one folder, no new sub-run
    assert len(list(board.glob("events.out.tfevents.*"))) == 2
    loss, _ = scalars(board, "loss")
    resumed = [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in rows(run) if "loss" in r]
    assert [s for s, _ in loss] == [5, 10, 15, 20] and loss == resumed
    assert purge_steps(board) == [11]  # written by SummaryWriter(purge_step=...) on resume


def purge_steps(folder) -> list[int]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    return [
        event.step
        for path in sorted(folder.glob("events.out.tfevents.*"))
        for event in EventFileLoader(str(path)).Load()
        if event.HasField("session_log") and event.session_log.status == SessionLog.START
    ]


def record_log(path, marker: bytes, timeout_s: float = 20.0) -> bytes:
    """An offline run's record log, where W&B keeps the config (values as JSON text). W&B's
    service may still be writing it for a moment after ``finish()`` returns."""
    deadline = time.monotonic() + timeout_s
    while marker not in (data := path.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return data


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")  # keep pytest's capture of stdout as it is
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))


def test_wandb_offline_run_lives_in_the_run_folder_and_resume_keeps_its_id(nano_cfg, offline_wandb):
    pytest.importorskip("wandb")
    cfg = nano_cfg("train.log_to=[wandb]", "train.max_steps=10", "train.checkpoint_every=5", *FAST)
    train(cfg)
    run = cfg.run_dir
    run_id = (run / "wandb_id").read_text().strip()
    (first,) = sorted((run / "wandb").glob("offline-run-*"))
    assert first.name.endswith(f"-{run_id}")
    log = record_log(first / f"run-{run_id}.wandb", b"val_loss")
    assert b'"log_to"' in log and b'"budget_words"' in log  # the resolved config and ledger
    assert b"grad_norm" in log and b"val_loss" in log  # the metrics.jsonl rows

    crash_after(run, 5)
    train(cfg, resume="auto")
    assert (run / "wandb_id").read_text().strip() == run_id
    folders = sorted((run / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and all(f.name.endswith(f"-{run_id}") for f in folders)


def test_unknown_tracker_is_a_one_line_error_with_a_suggestion(nano_cfg):
    with pytest.raises(UserError) as e:
        nano_cfg("train.log_to=[tensorbord]")
    message = str(e.value)
    assert "train.log_to" in message and "did you mean 'tensorboard'" in message
    assert "\n" not in message
    assert nano_cfg("train.log_to=wandb").train.log_to == ["wandb"]  # one name alone is a list
    assert set(OPENERS) == set(TRACKERS)


@pytest.mark.parametrize(
    ("sink", "module"), [(TensorBoardSink, "torch.utils.tensorboard"), (WandbSink, "wandb")]
)
def test_missing_extra_names_the_install_command(nano_cfg, monkeypatch, sink, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"pip install 'thrifty\[track\]'"):
        sink(nano_cfg(), {}, None)


class Recorder:
    def __init__(self) -> None:
        self.rows, self.closed = [], None

    def write(self, row: dict) -> None:
        self.rows.append(row)

    def close(self, failed: bool = False) -> None:
        self.closed = "failed" if failed else "ok"


def test_sinks_get_every_row_and_are_closed_when_training_fails(tmp_path):
    sink = Recorder()
    with pytest.raises(RuntimeError), MetricsLog(tmp_path / "m.jsonl", sinks=[sink]) as log:
        log.write({"step": 1, "loss": 2.0})
        raise RuntimeError("diverged")
    assert sink.rows == [json.loads((tmp_path / "m.jsonl").read_text())]
    assert sink.closed == "failed"


def test_the_loop_closes_its_trackers_when_training_stops_with_an_error(nano_cfg, monkeypatch):
    from thrifty.train import loop

    sink = Recorder()
    monkeypatch.setattr(loop, "open_sinks", lambda *args: [sink])

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(loop, "evaluate", broken)  # first called at step 10
    with pytest.raises(RuntimeError, match="evaluation broke"):
        train(nano_cfg(*FAST))
    assert [r["step"] for r in sink.rows] == [5, 10] and sink.closed == "failed"
