"""`thrifty train CONFIG --resume auto key=value`: overrides are accepted after options too."""

from pathlib import Path

import pytest
import yaml

from thrifty.cli.main import main

NANO = str(Path(__file__).parent.parent / "configs" / "nano.yaml")


def dry_run(capsys, *args: str) -> dict:
    assert main(["train", *args, "--dry-run"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_overrides_after_options_keep_their_order(capsys):
    cfg = dry_run(capsys, NANO, "train.lr=0.5", "--resume", "auto", "train.lr=0.25", "name=late")
    assert cfg["train"]["lr"] == 0.25 and cfg["name"] == "late"
    cfg = dry_run(capsys, "--resume", "auto", NANO, "train.seed=3")
    assert cfg["train"]["seed"] == 3 and cfg["name"] == "nano"


def test_unknown_options_are_still_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", NANO, "--resume", "auto", "--frobnicate", "train.lr=1"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
