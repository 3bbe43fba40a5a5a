"""Recovery from crashes and bad input around checkpoints: re-saving a step never leaves
``latest`` naming a missing folder, leftovers of a crash are cleaned on the next start, a full
disk and a changed model section are one-line errors that leave the run as it was."""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thrifty.cli.main import main
from thrifty.errors import UserError
from thrifty.runs import latest_checkpoint, load_model, read_state
from thrifty.train import checkpoint
from thrifty.train.loop import train

NANO = str(Path(__file__).parents[2] / "configs" / "nano.yaml")


def cli_args(cfg, *overrides):
    """`thrifty train` arguments for the run of ``cfg`` (same data and runs folder)."""
    return [
        "train",
        NANO,
        f"data.path={cfg.data.path}",
        f"runs_dir={cfg.runs_dir}",
        f"name={cfg.name}",
        "train.threads=1",
        *overrides,
    ]


def one_error_line(capsys) -> str:
    """The error the CLI printed, which must be the last line of stderr and the only one."""
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    return errors[0]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def test_latest_always_names_a_complete_checkpoint_while_a_step_is_resaved(nano_cfg, monkeypatch):
    straight = nano_cfg("name=straight")
    train(straight)
    cfg = nano_cfg("name=resaved")
    train(cfg)
    root = cfg.run_dir / "checkpoints"

    def check(what):
        name = (root / "latest").read_text().strip()
        assert (root / name / "state.json").is_file(), f"{what}: latest names {name}, gone"

    def watched(fn):
        def call(*args, **kwargs):
            check(f"before {fn.__name__}{args[:1]}")
            out = fn(*args, **kwargs)
            check(f"after {fn.__name__}{args[:1]}")
            return out

        return call

    monkeypatch.setattr(shutil, "rmtree", watched(shutil.rmtree))
    monkeypatch.setattr(os, "replace", watched(os.replace))
    # latest names step 20; resuming from step 10 writes step 20 again over it
    train(cfg, resume=str(root / "step_00000010"))
    monkeypatch.undo()
    assert latest_checkpoint(cfg.run_dir).name == "step_00000020"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000010", "step_00000020"]
    a = load_file(str(latest_checkpoint(straight.run_dir) / "model.safetensors"))
    b = load_file(str(root / "step_00000020" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    read_state(root / "step_00000020", verify=True)


def test_leftovers_of_a_crash_are_removed_on_the_next_start(nano_cfg):
    cfg = nano_cfg("train.max_steps=10", "train.checkpoint_every=5")
    train(cfg)
    root = cfg.run_dir / "checkpoints"
    (root / "step_00000007.tmp").mkdir()
    (root / "step_00000007.tmp" / "model.safetensors").write_bytes(b"half a file")
    (root / "step_00000005.old").mkdir()
    (root / "latest.tmp-4242").write_text("step_0000")
    train(cfg, resume="auto")  # nothing left to train: the start alone cleans up
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000005", "step_00000010"]


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(nano_cfg, monkeypatch, capsys):
    cfg = nano_cfg("train.max_steps=10", "train.checkpoint_every=5")
    train(cfg)
    root = cfg.run_dir / "checkpoints"
    before = snapshot(root)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    capsys.readouterr()
    assert main(cli_args(cfg, "train.max_steps=15", "--resume", "auto")) == 2
    line = one_error_line(capsys)
    assert "no space left" in line and str(root / "step_00000015.tmp") in line
    assert str(root / "step_00000010") in line  # the checkpoint a resume will use
    assert snapshot(root) == before  # no half-written folder, latest unchanged
    monkeypatch.undo()
    assert train(cfg, resume="auto")["steps"] == 10


def test_resume_after_changing_the_model_section(nano_cfg, capsys):
    cfg = nano_cfg("train.max_steps=4", "train.checkpoint_every=2")
    train(cfg)
    before = snapshot(cfg.run_dir)
    capsys.readouterr()
    assert main(cli_args(cfg, "train.max_steps=4", "model.n_layers=3", "--resume", "auto")) == 2
    line = one_error_line(capsys)
    assert "model.n_layers: 2 -> 3" in line and "step_00000004" in line
    assert snapshot(cfg.run_dir) == before
    with pytest.raises(UserError, match=r"model\.rope_theta: 10000\.0 -> 500\.0"):
        train(nano_cfg("train.max_steps=4", "model.rope_theta=500"), resume="auto")
    # the same widths spelled through another size preset are the same network
    same = nano_cfg(
        "model.size=mini",
        "model.d_model=64",
        "model.n_layers=2",
        "model.n_heads=2",
        "train.max_steps=6",
    )
    assert train(same, resume="auto")["steps"] == 6


def test_run_folder_yaml_that_does_not_parse(nano_cfg, capsys):
    cfg = nano_cfg("train.max_steps=2", "train.checkpoint_every=2")
    train(cfg)
    (cfg.run_dir / "config.yaml").write_text("model: {size: nano\ntrain: [")
    capsys.readouterr()
    assert main(["train", str(cfg.run_dir / "config.yaml"), "--resume", "auto"]) == 2
    line = one_error_line(capsys)
    assert f"{cfg.run_dir / 'config.yaml'}:" in line and "not valid YAML" in line
    ckpt = latest_checkpoint(cfg.run_dir)
    (ckpt / "config.yaml").write_text("model:\n  size: [nano\n")
    with pytest.raises(UserError, match=r"step_00000002: config\.yaml fails its checksum"):
        load_model(cfg.run_dir)
    assert main(cli_args(cfg, "train.max_steps=2", "--resume", "auto")) == 2
    assert "step_00000002: config.yaml fails its checksum" in one_error_line(capsys)
    json.loads((ckpt / "state.json").read_text())  # the checkpoint itself is untouched
