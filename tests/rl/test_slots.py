"""OCR-RL (papers/ocr_rl.md): Slot Attention's equivariance and the pooling's invariance, MiniGrid
frames prepared deterministically, a slot_ae run through the CLI and its audit, and PPO on
frames with the frozen slots (whose weights must not move), from scratch and on a frozen AE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thrifty.cli.main import main
from thrifty.errors import UserError
from thrifty.models.slots import SlotAttention, SlotPooling
from thrifty.runs import latest_checkpoint

pytest.importorskip("minigrid")
pytest.importorskip("stable_baselines3")

CONFIG = str(Path(__file__).parents[2] / "configs" / "slot-ae-minigrid.yaml")
TINY_PPO = ["--steps", "128", "--n-envs", "2", "--n-steps", "64", "--batch-size", "64",
            "--n-epochs", "1", "--eval-episodes", "3"]  # fmt: skip


def test_permuting_initial_slots_permutes_the_slots():
    torch.manual_seed(0)
    attention = SlotAttention(in_dim=12, dim=16, num_slots=4, iterations=3)
    inputs, noise = torch.randn(2, 10, 12), torch.randn(2, 4, 16)
    order = torch.tensor([2, 0, 3, 1])
    slots, attn = attention(inputs, noise)
    permuted, permuted_attn = attention(inputs, noise[:, order])
    assert torch.allclose(permuted, slots[:, order], atol=1e-5)
    assert torch.allclose(permuted_attn, attn[:, order], atol=1e-6)
    assert not torch.allclose(slots[:, 0], slots[:, 1], atol=1e-3)  # slots did not collapse


def test_transformer_pooling_ignores_the_order_of_slots():
    torch.manual_seed(0)
    pool = SlotPooling(dim=16, out_dim=8)
    slots = torch.randn(3, 5, 16)
    shuffled = slots[:, torch.tensor([4, 2, 0, 1, 3])]
    assert torch.allclose(pool(slots), pool(shuffled), atol=1e-5)
    assert not torch.allclose(pool(slots), pool(torch.randn_like(slots)), atol=1e-3)


def prepare(out: Path, count: int = 120) -> Path:
    args = ["prepare", "images:minigrid-frames", "--out", str(out), "--count", str(count)]
    assert main([*args, "--quiet"]) == 0
    return out


def test_frames_are_prepared_deterministically(tmp_path, capsys):
    a, b = prepare(tmp_path / "a", 60), prepare(tmp_path / "b", 60)
    for split in ("train", "valid", "test"):
        x, y = (load_file(str(root / f"{split}.safetensors")) for root in (a, b))
        assert torch.equal(x["images"], y["images"]) and torch.equal(x["labels"], y["labels"])
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["image_shape"] == [3, 28, 28] and manifest["ledger"]["unit"] == "images"
    (source,) = manifest["ledger"]["sources"]
    assert source["path"] == "synthetic:minigrid-frames:MiniGrid-Fetch-5x5-N2-v0"
    assert source["synthetic"] is True
    images = load_file(str(a / "train.safetensors"))["images"]
    assert images.float().std() > 10  # real renders, not a blank
    args = ["prepare", "images:minigrid-frames:MiniGrid-Nope-v0", "--out", str(tmp_path / "c")]
    assert main(args) == 2
    assert "MiniGrid-Nope-v0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def slot_run(tmp_path_factory):
    """A tiny slot_ae run trained through the CLI on freshly prepared frames."""
    root = tmp_path_factory.mktemp("slots")
    data = prepare(root / "frames", 200)
    args = ["train", CONFIG, f"data.path={data}", f"runs_dir={root / 'runs'}", "name=slots",
            "train.threads=1", "train.max_steps=8", "train.checkpoint_every=8",
            "train.eval_every=8", "train.eval_batches=1", "train.warmup_steps=2",
            "train.peak_flops=1e11", "train.log_every=1"]  # fmt: skip
    assert main(args) == 0
    return root / "runs" / "slots", data


def test_slot_ae_trains_and_passes_the_audit(slot_run, capsys):
    run, _ = slot_run
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < losses[0]
    ckpt = latest_checkpoint(run)
    assert json.loads((ckpt / "state.json").read_text())["model_kind"] == "encoder"
    owned = load_file(str(ckpt / "objective.safetensors"))
    assert {k.split(".")[0] for k in owned} == {"slots", "decoder"}
    capsys.readouterr()
    assert main(["audit", str(run)]) == 0
    assert "synthetic:minigrid-frames" in capsys.readouterr().out


def test_ppo_on_frozen_slots_writes_a_run_and_keeps_the_encoder(slot_run, tmp_path):
    run, _ = slot_run
    out = tmp_path / "ppo"
    assert main(["ppo-pixels", "--out", str(out), "--arm", "slots", "--encoder", str(run),
                 *TINY_PPO]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == [0, 128]
    result = json.loads((out / "result.json").read_text())
    assert result["arm"] == "slots" and result["env_steps"] == 128
    ledger = json.loads((out / "ledger.json").read_text())
    assert ledger["unit"] == "images" and ledger["env_steps"]["used"] == 128
    assert ledger["words_seen"] > 0  # the slot_ae run's pretraining images
    policy = load_file(str(out / "policy.safetensors"))
    pretrained = load_file(str(latest_checkpoint(run) / "model.safetensors"))
    for name, weight in pretrained.items():
        assert torch.equal(policy[f"features_extractor.model.{name}"], weight), name


def test_cnn_arms_from_scratch_and_on_a_frozen_autoencoder(slot_run, tmp_path, capsys):
    _, frames = slot_run
    ae = tmp_path / "ae"
    assert main(["pretrain-cnn-ae", str(frames), "--out", str(ae), "--steps", "10"]) == 0
    for arm, extra in (("cnn", []), ("cnn-ae", ["--encoder", str(ae)])):
        out = tmp_path / arm
        assert main(["ppo-pixels", "--out", str(out), "--arm", arm, *extra, *TINY_PPO]) == 0
        assert json.loads((out / "result.json").read_text())["env_steps"] == 128
    frozen = load_file(str(tmp_path / "cnn-ae" / "policy.safetensors"))
    encoder = load_file(str(ae / "encoder.safetensors"))
    assert all(torch.equal(frozen[f"features_extractor.cnn.{k}"], v) for k, v in encoder.items())
    capsys.readouterr()
    assert main(["ppo-pixels", "--out", str(tmp_path / "x"), "--arm", "cnn-ae"]) == 2
    assert "--encoder" in capsys.readouterr().err


def test_settings_errors_name_the_flag():
    from thrifty.rl.pixel_ppo import PixelPPOSettings

    with pytest.raises(UserError, match="--arm=cnn"):
        PixelPPOSettings(arm="cnn", encoder="somewhere").check()
    with pytest.raises(UserError, match="--steps=10"):
        PixelPPOSettings(arm="cnn", steps=10).check()
