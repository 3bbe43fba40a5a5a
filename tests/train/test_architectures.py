"""Every block slot and linear member trains end to end, resumes bit-exactly and scores BLiMP."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from thrifty.runs import latest_checkpoint
from thrifty.train.loop import train

MEMBERS = {
    "lowrank": ("model.linear=lowrank", "model.linear.rank=8"),
    "sltrain": ("model.linear=sltrain", "model.linear.rank=8", "model.linear.density=0.05"),
    "monarch": ("model.linear=monarch",),
    "parallel": ("model.block=parallel", "model.projections.down=lowrank"),
    "moe": ("model.mlp=moe", "model.mlp.experts=4"),
    "meta": ("model.attention=meta", "objective.name=meta_lm", "objective.rate=0.1"),
}


@pytest.mark.parametrize("member", MEMBERS)
def test_member_resumes_bitwise_and_scores_blimp(nano_cfg, blimp_dir, member):
    settings = (
        *MEMBERS[member],
        "model.max_seq_len=160",
        "train.max_steps=10",
        "train.checkpoint_every=5",
    )
    straight = nano_cfg("name=straight", *settings)
    train(straight)
    blimp = (f"eval.blimp_data={blimp_dir}", "eval.max_pairs_per_paradigm=1")
    broken = nano_cfg("name=broken", *settings, *blimp)
    train(broken)
    ckpts = broken.run_dir / "checkpoints"
    shutil.rmtree(ckpts / "step_00000010")
    (ckpts / "latest").write_text("step_00000005")
    summary = train(broken, resume="auto")
    a, b = (
        load_file(str(latest_checkpoint(r.run_dir) / "model.safetensors"))
        for r in (straight, broken)
    )
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    result = json.loads((broken.run_dir / "eval" / "blimp_causal.json").read_text())
    assert 0.0 <= summary["blimp_causal"] == result["macro"] <= 1.0
