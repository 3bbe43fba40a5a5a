from pathlib import Path

import pytest
import yaml

from thrifty.config import (
    RunConfig,
    TrainConfig,
    dump_config,
    field_docs,
    from_dict,
    load_config,
    to_dict,
)
from thrifty.errors import UserError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_round_trip(path):
    cfg = load_config(path)
    again = from_dict(RunConfig, yaml.safe_load(dump_config(cfg)))
    assert to_dict(again) == to_dict(cfg)


def test_overrides_are_parsed_as_yaml():
    cfg = load_config(
        CONFIGS[0], ["train.lr=1e-3", "objective.name=masked_lm", "train.betas=[0.8, 0.9]"]
    )
    assert cfg.train.lr == 1e-3 and cfg.objective["name"] == "masked_lm"
    assert cfg.train.betas == (0.8, 0.9)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(UserError, match=r"train\.lrr.*did you mean 'lr'"):
        load_config(None, ["train.lrr=1"])


def test_wrong_type_names_the_key():
    with pytest.raises(UserError, match=r"train\.batch_size: expected int"):
        load_config(None, ["train.batch_size=big"])


def test_unknown_objective_and_objective_field():
    with pytest.raises(UserError, match="did you mean 'gpt_bert'"):
        load_config(None, ["objective.name=gpt_bart"])
    with pytest.raises(UserError, match="objective.mask_rat"):
        load_config(None, ["objective.name=masked_lm", "objective.mask_rat=0.2"])


def test_a_stopping_rule_is_required():
    with pytest.raises(UserError, match="max_steps"):
        TrainConfig()


def test_every_field_is_documented():
    from thrifty.config import DataConfig, EvalConfig, ModelConfig

    for cls in (ModelConfig, DataConfig, TrainConfig, EvalConfig):
        docs = field_docs(cls)
        missing = [f for f in cls.__dataclass_fields__ if f not in docs]
        assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


def test_missing_config_file():
    with pytest.raises(UserError, match="not found"):
        load_config("nope.yaml")
