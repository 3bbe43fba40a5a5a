"""``train.compile``: false, true (the whole model) or regional (each block compiled in place,
same module tree and checkpoint keys); a regional run trains what the eager run trains."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from thrifty.config import ModelConfig
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer
from thrifty.runs import latest_checkpoint
from thrifty.train.compiling import compiled
from thrifty.train.loop import train


def test_compile_takes_false_true_or_regional_and_names_a_bad_value(nano_cfg):
    assert nano_cfg().train.compile is False
    assert nano_cfg("train.compile=true").train.compile is True
    assert nano_cfg("train.compile=regional").train.compile == "regional"
    with pytest.raises(UserError, match="train.compile"):
        nano_cfg("train.compile=partly")


def test_regional_compilation_keeps_the_module_and_its_keys():
    model = Transformer(ModelConfig(size="nano", vocab_size=100))
    keys = list(model.state_dict())
    assert compiled(model, "regional") is model and list(model.state_dict()) == keys
    # nn.Module.compile's mark: each block's calls go through its compiled forward
    assert all(block._compiled_call_impl is not None for block in model.blocks)
    assert model.embed._compiled_call_impl is None  # the stem stays eager
    assert compiled(model, False) is model


@pytest.mark.slow  # compiles (about 10 s, and a C compiler)
def test_a_regional_run_trains_what_the_eager_run_trains(nano_cfg):
    runs = {}
    for name, how in (("eager", "false"), ("regional", "regional")):
        cfg = nano_cfg(f"name={name}", f"train.compile={how}", "train.max_steps=3",
                       "train.log_every=1", "train.eval_every=0")  # fmt: skip
        train(cfg)
        rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
        loss = [r["loss"] for r in rows if "loss" in r]
        runs[name] = (loss, load_file(str(latest_checkpoint(cfg.run_dir) / "model.safetensors")))
    (eager_loss, eager), (regional_loss, regional) = runs["eager"], runs["regional"]
    assert len(eager_loss) == 3 and regional.keys() == eager.keys()
    assert regional_loss == pytest.approx(eager_loss, rel=1e-4)
    for key in eager:
        torch.testing.assert_close(regional[key], eager[key], atol=1e-4, rtol=1e-4)
