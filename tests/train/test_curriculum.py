"""Sequence-length curriculum: phases, constant tokens per step, exact resume across a switch."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from thrifty.errors import UserError
from thrifty.runs import latest_checkpoint
from thrifty.train.curriculum import Phase, phase_at, plan_phases, samples_before
from thrifty.train.loop import train


def test_phases_keep_tokens_per_micro_batch():
    phases = plan_phases({0.7: 256, 0.9: 512}, 128, 32, 1000, 512)
    assert phases == [Phase(0, 0, 128, 32), Phase(1, 700, 256, 16), Phase(2, 900, 512, 8)]
    assert phase_at(phases, 699).seq_len == 128 and phase_at(phases, 700).seq_len == 256
    assert samples_before(phases, 701, grad_accum=2, world=3) == 700 * 6 * 32 + 1 * 6 * 16


@pytest.mark.parametrize(
    "curriculum, message",
    [
        ({1.5: 256}, "in (0, 1)"),
        ({0.5: 64}, "must exceed"),
        ({0.5: 384}, "do not split into rows of 384"),
        ({0.5: 1024}, "exceeds model.max_seq_len=512"),
    ],
)
def test_bad_curricula_name_the_phase(curriculum, message):
    with pytest.raises(UserError, match="data.seq_len_curriculum"):
        plan_phases(curriculum, 128, 32, 1000, 512)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_phases(curriculum, 128, 32, 1000, 512)


CURRICULUM = ("data.seq_len=16", "data.seq_len_curriculum={0.5: 32}", "train.keep_last=0")


def weights(run_dir):
    return load_file(str(latest_checkpoint(run_dir) / "model.safetensors"))


def test_longer_windows_in_the_second_half_same_tokens_per_step(nano_cfg):
    cfg = nano_cfg(*CURRICULUM, "train.log_every=1", "train.eval_every=0")
    train(cfg)
    rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    tokens = [r["tokens"] for r in rows if "tokens" in r]
    assert tokens == [8 * 16 * (i + 1) for i in range(20)]
    flops = [r["flops"] / r["tokens"] for r in rows if "flops" in r]
    assert flops[9] < flops[-1]  # attention over longer windows costs more per token


@pytest.mark.parametrize(
    "resume_from", ["step_00000010", "step_00000015"]
)  # at and after the switch
def test_resume_on_either_side_of_the_switch_is_bitwise_exact(nano_cfg, resume_from):
    straight = nano_cfg("name=straight", "train.checkpoint_every=5", *CURRICULUM)
    train(straight)
    broken = nano_cfg("name=broken", "train.checkpoint_every=5", *CURRICULUM)
    train(broken)
    ckpts = broken.run_dir / "checkpoints"
    for later in [p for p in ckpts.glob("step_*") if p.name > resume_from]:
        shutil.rmtree(later)
    (ckpts / "latest").write_text(resume_from)
    train(broken, resume="auto")
    a, b = weights(straight.run_dir), weights(broken.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
