"""Objectives that train networks besides the model (ELECTRA, MCL): optimizer, FLOPs,
checkpoints and exact resume through the ordinary loop."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from thrifty.runs import latest_checkpoint, load_model, sha256_file
from thrifty.train.loop import train

# A fixed MFU denominator: measuring the CPU's matmul peak costs seconds per run.
PEAK = "train.peak_flops=1e11"


def weights(run_dir, name="model.safetensors"):
    return load_file(str(latest_checkpoint(run_dir) / name))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "objective",
    [
        ["objective.name=electra"],
        ["objective.name=electra", "objective.embedding_sharing=gdes"],
        ["objective.name=mcl"],
    ],
)
def test_resume_is_bitwise_exact(nano_cfg, objective):
    args = ["train.max_steps=8", "train.checkpoint_every=4", "train.eval_every=4", PEAK]
    args += objective
    straight = nano_cfg("name=straight", *args)
    train(straight)
    broken = nano_cfg("name=broken", *args)
    train(broken)
    ckpts = broken.run_dir / "checkpoints"
    shutil.rmtree(ckpts / "step_00000008")
    (ckpts / "latest").write_text("step_00000004")
    train(broken, resume="auto")
    for name in ("model.safetensors", "objective.safetensors"):
        assert_same(weights(straight.run_dir, name), weights(broken.run_dir, name))


def test_checkpoint_holds_both_networks_and_load_model_the_discriminator(nano_cfg):
    cfg = nano_cfg(
        "objective.name=electra", "objective.embedding_sharing=gdes", "train.max_steps=6", PEAK
    )
    summary = train(cfg)
    ckpt = latest_checkpoint(cfg.run_dir)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["files"]["objective.safetensors"] == sha256_file(ckpt / "objective.safetensors")
    owned = load_file(str(ckpt / "objective.safetensors"))
    assert any(k.startswith("generator.blocks.") for k in owned) and "rtd_head.out.weight" in owned
    assert owned["embed_delta"].abs().sum() > 0  # E_Δ trained
    loaded = load_model(cfg.run_dir)
    folded = owned["gen_embed"] + owned["embed_delta"]
    assert torch.equal(loaded.model.embed.weight, folded)  # export and fine-tuning see E_D
    # The progress line carries both networks' metrics; FLOPs count the generator.
    rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    row = [r for r in rows if "rtd_loss" in r and "val_loss" not in r][-1]
    for key in ("gen_loss", "gen_acc", "replaced", "rtd_loss", "rtd_p", "rtd_r"):
        assert key in row
    disc_only = loaded.model.flops_per_token(cfg.data.seq_len, 0.0)
    assert row["flops"] > disc_only * row["tokens"]
    assert summary["steps"] == 6


def test_objectives_without_own_networks_write_no_extra_file(nano_cfg):
    cfg = nano_cfg("objective.name=masked_lm", "train.max_steps=2", PEAK)
    train(cfg)
    ckpt = latest_checkpoint(cfg.run_dir)
    assert not (ckpt / "objective.safetensors").exists()
    files = json.loads((ckpt / "state.json").read_text())["files"]
    assert set(files) == {"model.safetensors", "optim.pt", "rng.pt", "config.yaml"}


def test_resuming_an_electra_run_without_its_generator_is_refused(nano_cfg):
    from thrifty.errors import UserError

    cfg = nano_cfg("objective.name=masked_lm", "train.max_steps=2", PEAK)
    train(cfg)
    electra = nano_cfg("objective.name=electra", "train.max_steps=4", PEAK)
    with pytest.raises(UserError, match="objective.safetensors"):
        train(electra, resume=str(latest_checkpoint(cfg.run_dir)))
