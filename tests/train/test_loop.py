import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError
from thrifty.runs import latest_checkpoint, load_model
from thrifty.train.loop import TrainingDiverged, train


def final_weights(run_dir):
    return load_file(str(latest_checkpoint(run_dir) / "model.safetensors"))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_writes_run_folder_and_charges_the_ledger(nano_cfg):
    cfg = nano_cfg()
    summary = train(cfg)
    run = cfg.run_dir
    assert summary["steps"] == 20
    for name in ("config.yaml", "metrics.jsonl", "ledger.json", "tokenizer.json"):
        assert (run / name).is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [5, 10, 15, 20]
    assert any("val_loss" in r for r in rows)
    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger["words_seen"] > 0
    assert latest_checkpoint(run).name == "step_00000020"
    assert load_model(run).state["step"] == 20


def test_loss_falls(nano_cfg):
    rows = []
    cfg = nano_cfg("train.max_steps=60", "train.log_every=10", "train.eval_every=0")
    train(cfg)
    for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines():
        rows.append(json.loads(line))
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < losses[0] - 1.0


@pytest.mark.parametrize("objective", ["causal_lm", "masked_lm", "gpt_bert"])
def test_resume_is_bitwise_exact(nano_cfg, objective):
    straight = nano_cfg("name=straight", f"objective.name={objective}")
    train(straight)
    broken = nano_cfg("name=broken", f"objective.name={objective}")
    train(broken)
    # Pretend the run died after step 10: drop the final checkpoint, point latest back.
    ckpts = broken.run_dir / "checkpoints"
    import shutil

    shutil.rmtree(ckpts / "step_00000020")
    (ckpts / "latest").write_text("step_00000010")
    train(broken, resume="auto")
    assert_same(final_weights(straight.run_dir), final_weights(broken.run_dir))
    steps = [
        json.loads(x)["step"] for x in (broken.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == sorted(steps) and steps.count(20) == 2  # one train row + one eval row


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(nano_cfg, tmp_path):
    args = [
        "train.max_steps=60",
        "train.checkpoint_every=4",
        "train.keep_last=2",
        "train.eval_every=0",
    ]
    straight = nano_cfg("name=straight", *args)
    train(straight)
    victim = nano_cfg("name=victim", *args)
    cmd = [
        sys.executable,
        "-m",
        "thrifty.cli.main",
        "train",
        "configs/nano.yaml",
        f"data.path={victim.data.path}",
        f"runs_dir={victim.runs_dir}",
        "name=victim",
        "train.threads=1",
        *args,
    ]
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"training exited before it was killed: {proc.stderr.read().decode()[-2000:]}"
            )
        ckpt = (
            latest_checkpoint(victim.run_dir) if (victim.run_dir / "checkpoints").exists() else None
        )
        if ckpt is not None and ckpt.name >= "step_00000012":
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest_checkpoint(victim.run_dir).name < "step_00000060", "killed too late to test"
    summary = train(victim, resume="auto")
    assert summary["steps"] == 60
    assert_same(final_weights(straight.run_dir), final_weights(victim.run_dir))


def test_existing_run_needs_resume(nano_cfg):
    cfg = nano_cfg("train.max_steps=2")
    train(cfg)
    with pytest.raises(UserError, match="--resume auto"):
        train(cfg)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(nano_cfg, monkeypatch):
    from thrifty.objectives.causal_lm import CausalLM

    cfg = nano_cfg("train.checkpoint_every=5")
    original, calls = CausalLM.__call__, {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        out = original(self, batch)
        if calls["n"] == 8:  # the loop trains on the terms (normalised over the global batch)
            nan = float("nan")
            out.terms = {k: replace(t, total=t.total * nan) for k, t in out.terms.items()}
        return out

    monkeypatch.setattr(CausalLM, "__call__", poisoned)
    with pytest.raises(TrainingDiverged, match="step 8.*step_00000005"):
        train(cfg)
    assert load_model(cfg.run_dir).state["step"] == 5  # intact and verifiable


def test_tampered_or_truncated_checkpoint_is_refused(nano_cfg):
    cfg = nano_cfg("train.max_steps=2")
    train(cfg)
    weights = latest_checkpoint(cfg.run_dir) / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-10])
    with pytest.raises(UserError, match="checksum"):
        load_model(cfg.run_dir)
    weights.write_bytes(data[:-4] + bytes(4))
    with pytest.raises(UserError, match="checksum"):
        train(cfg, resume="auto")


def test_vocab_mismatch_is_a_clear_error(nano_cfg):
    with pytest.raises(UserError, match="model.vocab_size=999 does not match"):
        train(nano_cfg("model.vocab_size=999"))


def test_keep_last_prunes_old_checkpoints(nano_cfg):
    cfg = nano_cfg("train.checkpoint_every=2", "train.keep_last=2")
    train(cfg)
    names = sorted(p.name for p in (cfg.run_dir / "checkpoints").glob("step_*"))
    assert names == ["step_00000018", "step_00000020"]


def test_word_mark_checkpoints_survive_pruning(nano_cfg, monkeypatch):
    import thrifty.train.loop as loop

    cfg = nano_cfg("train.babylm_marks=true", "train.checkpoint_every=0", "train.keep_last=1")
    words_per_step = 8 * 32 * TokenStore(cfg.data.path, "train").words_per_token
    marks = [int(words_per_step * 5.5), int(words_per_step * 12.5)]  # crossed at steps 6 and 13
    monkeypatch.setattr(loop, "word_marks", lambda: marks)
    train(cfg)
    ckpts = cfg.run_dir / "checkpoints"
    names = sorted(p.name for p in ckpts.glob("step_*"))
    assert names == ["step_00000006", "step_00000013", "step_00000020"]
    state = json.loads((ckpts / "step_00000006" / "state.json").read_text())
    assert state["word_mark"] == marks[0]


def test_checkpoints_record_the_model_kind_and_flops(nano_cfg):
    cfg = nano_cfg("train.max_steps=2", "objective=masked_lm", "train.eval_every=0")
    train(cfg)
    loaded = load_model(cfg.run_dir)
    assert loaded.state["model_kind"] == loaded.kind == "mlm"
    rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    row = [r for r in rows if "tokens" in r][-1]
    assert loaded.state["flops_per_token"] * row["tokens"] == row["flops"]


def test_moving_average_of_the_weights_resumes_exactly_and_loads(nano_cfg):
    from thrifty.train.checkpoint import load_ema_weights

    straight = nano_cfg("name=straight", "train.ema_decay=0.9")
    train(straight)
    broken = nano_cfg("name=broken", "train.ema_decay=0.9")
    train(broken)
    import shutil

    ckpts = broken.run_dir / "checkpoints"
    shutil.rmtree(ckpts / "step_00000020")
    (ckpts / "latest").write_text("step_00000010")
    train(broken, resume="auto")
    a, b = (load_ema_weights(latest_checkpoint(r.run_dir)) for r in (straight, broken))
    assert_same(a, b)
    averaged, last = load_model(straight.run_dir, ema=True), load_model(straight.run_dir)
    assert averaged.weights == "ema.safetensors"
    w = "blocks.0.attn.qkv.weight"
    assert not torch.equal(averaged.model.state_dict()[w], last.model.state_dict()[w])
    plain = nano_cfg("name=plain", "train.max_steps=2")
    train(plain)
    with pytest.raises(UserError, match="no ema.safetensors"):
        load_model(plain.run_dir, ema=True)
