"""Mixture-of-experts slots end to end: they train, log their routing, and resume bit-exactly."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thrifty.runs import latest_checkpoint
from thrifty.train.loop import train

sys.path.insert(0, str(Path(__file__).parent))
from multiprocess import torchrun  # noqa: E402

SHORT = ("train.max_steps=10", "train.checkpoint_every=5", "train.eval_every=0")
MOE = ("model.mlp=moe", "model.mlp.capacity_factor=1.0")
BAM = (*MOE, "model.attention=moa", "model.attention.share_kv=true", "model.block=parallel")


def train_rows(cfg) -> list[dict]:
    """metrics.jsonl rows of training steps (not validation)."""
    lines = (cfg.run_dir / "metrics.jsonl").read_text().splitlines()
    return [row for row in map(json.loads, lines) if "loss" in row]


def test_moe_trains_and_logs_its_routing(nano_cfg):
    cfg = nano_cfg(*SHORT, *MOE)
    train(cfg)
    logged = train_rows(cfg)
    for key in ("moe_balance", "moe_z", "moe_dropped", "moe_load_max"):
        assert all(math.isfinite(r[key]) for r in logged), key
    assert all(0.0 <= r["moe_dropped"] < 1.0 for r in logged)
    assert logged[-1]["loss"] < logged[0]["loss"]


def test_bam_layout_resumes_bit_exactly(nano_cfg):
    straight = nano_cfg("name=straight", *SHORT, *BAM)
    train(straight)
    broken = nano_cfg("name=broken", *SHORT, *BAM)
    train(broken)
    # Pretend the run died after step 5: drop the final checkpoint, point latest back.
    ckpts = broken.run_dir / "checkpoints"
    shutil.rmtree(ckpts / "step_00000010")
    (ckpts / "latest").write_text("step_00000005")
    train(broken, resume="auto")
    want = load_file(str(latest_checkpoint(straight.run_dir) / "model.safetensors"))
    got = load_file(str(latest_checkpoint(broken.run_dir) / "model.safetensors"))
    assert want.keys() == got.keys() and any(".attn.experts.1.q." in k for k in got)
    assert all(torch.equal(want[k], got[k]) for k in want)
    last, resumed = train_rows(straight)[-1], train_rows(broken)[-1]
    assert last["step"] == resumed["step"] == 10
    for key in ("loss", "moe_balance", "moe_z", "moe_dropped"):
        assert math.isfinite(last[key]) and last[key] == resumed[key], key


def test_two_processes_route_as_one_process(nano_cfg):
    # 8 rows per global batch either way; capacity is per row and f_i is global, so the
    # split changes nothing but float rounding
    steps = ("train.max_steps=4", "train.log_every=2", "train.eval_every=0", *MOE)
    one = nano_cfg("name=one", "train.batch_size=8", *steps)
    train(one)
    two = nano_cfg("name=two", "train.batch_size=4", *steps)
    where = (f"data.path={two.data.path}", f"runs_dir={two.runs_dir}", "name=two")
    done = torchrun(2, *where, "train.threads=1", "train.batch_size=4", *steps, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    for a, b in zip(train_rows(one), train_rows(two), strict=True):
        for key in ("loss", "moe_balance", "moe_z", "moe_dropped", "moe_load_max"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), (a["step"], key)
    want = load_file(str(latest_checkpoint(one.run_dir) / "model.safetensors"))
    got = load_file(str(latest_checkpoint(two.run_dir) / "model.safetensors"))
    for key in want:
        assert torch.allclose(want[key], got[key], rtol=1e-4, atol=2e-5), key


def test_evaluations_log_routing_pathways_of_fixed_training_windows(nano_cfg):
    cfg = nano_cfg("train.max_steps=10", "train.eval_every=5", "eval.pathway_samples=8", *MOE)
    train(cfg)
    rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evals] == [5, 10]
    for r in evals:
        assert r["pathway_distance"] >= 0.0 and -1.0 <= r["pathway_consistency"] <= 1.0
    dense = nano_cfg("name=dense", "train.max_steps=5", "train.eval_every=5")
    train(dense)
    assert "pathway_distance" not in (dense.run_dir / "metrics.jsonl").read_text()
