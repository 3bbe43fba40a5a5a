"""Monarch's reverse sparsification (``train.densify_at``): the switch, its resume, its loading."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from thrifty.errors import UserError
from thrifty.models.linear.dense import Dense
from thrifty.models.linear.monarch import Monarch
from thrifty.runs import latest_checkpoint, load_model
from thrifty.train.loop import train

MONARCH = (
    "model.linear=monarch",
    "model.linear.blocks=4",
    "train.densify_at=0.5",
    "train.keep_last=0",
)

EVERY_5 = ("train.checkpoint_every=5", "train.keep_last=5")


def weights(run_dir, step=None):
    ckpt = latest_checkpoint(run_dir) if step is None else run_dir / "checkpoints" / step
    return load_file(str(ckpt / "model.safetensors"))


def test_the_run_switches_to_dense_halfway_and_loads_dense(nano_cfg):
    cfg = nano_cfg(*MONARCH)
    train(cfg)
    ckpts = cfg.run_dir / "checkpoints"
    before = json.loads((ckpts / "step_00000010" / "state.json").read_text())
    assert before["densified"] is False  # saved at the end of step 10, the switch comes next
    assert "blocks.0.attn.qkv.left" in weights(cfg.run_dir, "step_00000010")
    assert "blocks.0.attn.qkv.weight" in weights(cfg.run_dir)
    loaded = load_model(cfg.run_dir)
    assert loaded.state["densified"] is True
    layers = [m for m in loaded.model.modules() if isinstance(m, Dense | Monarch)]
    assert layers and all(isinstance(m, Dense) for m in layers)
    # FLOPs: the dense half costs more per token than the Monarch half
    rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    flops = [r["flops"] / r["tokens"] for r in rows if "flops" in r]
    assert flops[0] < flops[-1]
    assert loaded.state["flops_per_token"] > before["flops_per_token"]


@pytest.mark.parametrize("resume_from", ["step_00000005", "step_00000015"])
def test_resume_across_the_switch_is_bitwise_exact(nano_cfg, resume_from):
    straight = nano_cfg("name=straight", *EVERY_5, *MONARCH)
    train(straight)
    broken = nano_cfg("name=broken", *EVERY_5, *MONARCH)
    train(broken)
    ckpts = broken.run_dir / "checkpoints"
    for later in sorted(p.name for p in ckpts.glob("step_*") if p.name > resume_from):
        shutil.rmtree(ckpts / later)
    (ckpts / "latest").write_text(resume_from)
    train(broken, resume="auto")
    a, b = weights(straight.run_dir), weights(broken.run_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_densify_needs_monarch_layers_and_a_fraction_in_range(nano_cfg):
    with pytest.raises(UserError, match="train.densify_at=0.5: the model has no monarch layer"):
        train(nano_cfg("train.densify_at=0.5"))
    for bad in ("0", "1.5"):
        with pytest.raises(UserError, match=f"train.densify_at={bad}"):
            nano_cfg(f"train.densify_at={bad}")
