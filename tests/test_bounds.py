"""Numbers in the config are checked against the range declared on their field when the
config is loaded: one line naming the key, the value and the range, exit 2, nothing written."""

import dataclasses
import typing
from pathlib import Path

import pytest

from thrifty.bounds import KEY
from thrifty.cli.main import main
from thrifty.config import DataConfig, EvalConfig, ModelConfig, ReweightConfig, TrainConfig
from thrifty.errors import UserError
from thrifty.registry import Registry

NANO = str(Path(__file__).parent.parent / "configs" / "nano.yaml")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.log_every=0", "train.log_every=0: must be >= 1"),
        ("train.grad_accum=0", "train.grad_accum=0: must be >= 1"),
        ("train.batch_size=0", "train.batch_size=0: must be >= 1"),
        ("train.lr=-1e-3", "train.lr=-0.001: must be >= 0"),
        ("train.lr=.nan", "train.lr=nan: must be a finite number >= 0"),
        ("train.lr=.inf", "train.lr=inf: must be a finite number >= 0"),
        ("train.betas=[0.9,1.0]", "train.betas=[0.9, 1.0]: must be >= 0 and < 1"),
        ("train.min_lr_ratio=2", "train.min_lr_ratio=2.0: must be >= 0 and <= 1"),
        ("data.seq_len=0", "data.seq_len=0: must be >= 1"),
        ("model.n_layers=-1", "model.n_layers=-1: must be >= 0"),
        ("model.norm_eps=0", "model.norm_eps=0.0: must be > 0"),
        ("train.reweight.temperature=0", "train.reweight.temperature=0.0: must be > 0"),
    ],
)
def test_bad_number_is_one_line_and_exit_2(override, expected, tmp_path, capsys):
    args = ["train", NANO, f"runs_dir={tmp_path / 'runs'}", override]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {expected}"]
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_good_edges_are_accepted():
    overrides = ["train.lr=0", "train.grad_clip=0", "train.warmup_steps=0", "train.keep_last=0"]
    assert main(["train", NANO, *overrides, "--dry-run"]) == 0


def numeric_fields(cls) -> list[dataclasses.Field]:
    """Fields of ``cls`` typed int or float (optionally with None, or a tuple of them)."""
    hints = typing.get_type_hints(cls)
    return [
        f
        for f in dataclasses.fields(cls)
        if {int, float} & ({hints[f.name]} | set(typing.get_args(hints[f.name])))
    ]


@pytest.mark.parametrize("cls", [ModelConfig, DataConfig, TrainConfig, ReweightConfig, EvalConfig])
def test_every_numeric_field_declares_its_range(cls):
    fields = numeric_fields(cls)
    assert fields  # the type test above would otherwise let every class pass
    missing = [f.name for f in fields if KEY not in f.metadata]
    assert not missing, f"{cls.__name__}: declare a range with bounded() for {missing}"


def test_plugin_configs_reject_non_finite_numbers():
    registry = Registry("toy")

    @registry.register("member")
    class Member:
        @dataclasses.dataclass(kw_only=True)
        class Config:
            weight: float = 1.0

    with pytest.raises(UserError, match=r"^toy.weight=inf: must be a finite number$"):
        registry.config({"name": "member", "weight": float("inf")}, "toy")
