"""Loss reweighting and continual pretraining (init_from, replay) through the training loop:
exact resume, metrics, ledger, checkpoints."""

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thrifty.data.budget import Ledger
from thrifty.runs import latest_checkpoint
from thrifty.train.loop import train
from thrifty.train.start import charge_start_model

# A fixed MFU denominator: measuring the CPU's matmul peak costs seconds per run.
PEAK = "train.peak_flops=1e11"


def weights(run_dir, name="model.safetensors"):
    return load_file(str(latest_checkpoint(run_dir) / name))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def resume_after_half(cfg, half: int, total: int) -> None:
    """Train ``cfg`` to the end, then pretend it died after ``half`` steps and resume it."""
    train(cfg)
    ckpts = cfg.run_dir / "checkpoints"
    shutil.rmtree(ckpts / f"step_{total:08d}")
    (ckpts / "latest").write_text(f"step_{half:08d}")
    train(cfg, resume="auto")


def rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "args",
    [
        ["train.reweight.strategy=linupper"],
        ["train.reweight.strategy=quadratic", "objective.name=masked_lm"],
        ["train.reweight.strategy=uniform", "objective.name=gpt_bert"],
        ["train.reweight.strategy=linupper", "objective.name=electra"],  # the probe path
    ],
)
def test_reweighted_training_resumes_bitwise_and_logs_weight_metrics(nano_cfg, args):
    common = ["train.max_steps=8", "train.checkpoint_every=4", "train.eval_every=4", PEAK, *args]
    straight = nano_cfg("name=straight", *common)
    train(straight)
    broken = nano_cfg("name=broken", *common)
    resume_after_half(broken, 4, 8)
    assert_same(weights(straight.run_dir), weights(broken.run_dir))
    logged = [r for r in rows(straight.run_dir) if "rw_entropy" in r]
    assert logged and all(0 < r["rw_entropy"] <= 1 and 0 <= r["rw_low_quartile"] for r in logged)


def test_reweighting_changes_training_and_uniform_weights_do_not(nano_cfg):
    """No reweighting and a flat strategy (huge temperature) train alike; linupper does not."""
    common = ["train.max_steps=3", "train.eval_every=0", PEAK]
    runs = {}
    for name, extra in {
        "plain": [],
        "flat": ["train.reweight.strategy=linupper", "train.reweight.temperature=1e9"],
        "linupper": ["train.reweight.strategy=linupper", "train.reweight.temperature=0.1"],
    }.items():
        cfg = nano_cfg(f"name={name}", *common, *extra)
        train(cfg)
        runs[name] = weights(cfg.run_dir)
    key = "embed.weight"
    assert torch.allclose(runs["plain"][key], runs["flat"][key], atol=1e-5)
    assert not torch.allclose(runs["plain"][key], runs["linupper"][key], atol=1e-5)


# ---- continual pretraining: init_from and the replay objective


@pytest.fixture
def start_run(nano_cfg):
    """A finished 6-step causal run to continue from."""
    cfg = nano_cfg("name=start", "train.max_steps=6", "train.eval_every=0", PEAK)
    train(cfg)
    return cfg.run_dir


def test_init_from_copies_the_weights_restarts_the_schedule_and_charges_the_start(
    nano_cfg, start_run
):
    # one step at lr 0: the weights stay the start model's
    cfg = nano_cfg(
        "name=cont", "train.max_steps=1", "train.lr=0.0", f"train.init_from={start_run}", PEAK
    )
    summary = train(cfg)
    assert summary["steps"] == 1
    assert_same(weights(start_run), weights(cfg.run_dir))
    ledger = json.loads((cfg.run_dir / "ledger.json").read_text())
    start_ledger = json.loads((start_run / "ledger.json").read_text())
    entry = next(m for m in ledger["aux_models"] if m["name"].startswith("start model"))
    prepared = sum(start_ledger["prepared_words"].values())
    assert entry["words"] == prepared > 0
    # the same prepared data: its words are in the start model's charge too, and count once
    assert ledger["overlap_words"] == prepared
    assert Ledger.from_dict(ledger).charged_words() == prepared


def test_a_start_model_charge_counts_words_of_this_run_it_provably_includes_once():
    own = Ledger(
        prepared_words={"train": 90, "valid": 10},
        texts=["own"],
        valid_texts=["own valid"],
        budget_words=100,
    )
    other_data = Ledger(prepared_words={"train": 50, "valid": 5}, texts=["other"])
    # specialists: one trained on own (its train and valid text), one on other data
    mixture = Ledger(prepared_words={"train": 0, "valid": 0})
    mixture.charge_aux_model("specialist a", 100, texts=["own", "own valid"])
    mixture.charge_aux_model("specialist b", 55, texts=["other"])
    # a specialist whose data was prepared before the valid text was on record
    unrecorded = Ledger(prepared_words={"train": 0, "valid": 0})
    unrecorded.charge_aux_model("specialist a", 100, texts=["own"])
    for start, again in ((own, 100), (other_data, 0), (mixture, 100), (unrecorded, 90)):
        ledger = copy.deepcopy(own)
        charge_start_model(ledger, Path("runs/start"), start)
        assert ledger.overlap_words == again
        assert ledger.charged_words() == 100 + start.charged_words() - again


def test_init_from_refuses_another_tokenizer_or_shape(nano_cfg, start_run, tmp_path, toy):
    from thrifty.data.prepare import prepare
    from thrifty.errors import UserError

    (tmp_path / "other.txt").write_text("\n".join(toy.texts(400)) + "\n")
    other = tmp_path / "other-data"
    prepare([str(tmp_path / "other.txt")], other, budget_words=None, vocab_size=280,
            valid_fraction=0.1, progress=False)  # fmt: skip
    with pytest.raises(UserError, match="tokenizer differs"):
        train(nano_cfg("name=a", f"data.path={other}", f"train.init_from={start_run}", PEAK))
    with pytest.raises(UserError, match="do not fit"):
        train(nano_cfg("name=b", "model.d_model=32", f"train.init_from={start_run}", PEAK))


REPLAY = ["objective.name=replay", "objective.windows=16", "objective.valid_windows=8"]


@pytest.mark.parametrize("constraint", ["tm", "none", "kl", "l2"])
def test_replay_run_resumes_bitwise_and_reports_both_domains(nano_cfg, start_run, constraint):
    data = nano_cfg().data.path  # the same text stands in for the old and the new domain
    common = [*REPLAY, f"objective.data={data}", f"objective.constraint={constraint}"]
    common += [f"train.init_from={start_run}", "train.max_steps=8", "train.checkpoint_every=4"]
    common += ["train.eval_every=4", PEAK]
    straight = nano_cfg("name=straight", *common)
    train(straight)
    broken = nano_cfg("name=broken", *common)
    resume_after_half(broken, 4, 8)
    assert_same(weights(straight.run_dir), weights(broken.run_dir))
    logged = rows(straight.run_dir)
    evals = [r for r in logged if "val_old_loss" in r]
    assert [r["step"] for r in evals] == [4, 8] and all("val_loss" in r for r in evals)
    steps = [r for r in logged if "replay_loss" in r]
    assert steps and all(r["replay_epochs"] > 0 for r in steps)
    if constraint != "none":
        assert all("constraint" in r for r in steps)
    # The frozen teacher is not trained, so it is never checkpointed.
    files = json.loads((latest_checkpoint(straight.run_dir) / "state.json").read_text())["files"]
    assert set(files) == {"model.safetensors", "optim.pt", "rng.pt", "config.yaml"}
    ledger = json.loads((straight.run_dir / "ledger.json").read_text())
    names = [m["name"] for m in ledger["aux_models"]]
    assert any(n.startswith("replay set (16 windows") for n in names)
    assert any(n.startswith("start model") for n in names)


def test_constraints_need_a_start_model(nano_cfg):
    from thrifty.errors import UserError

    data = nano_cfg().data.path
    with pytest.raises(UserError, match="train.init_from"):
        train(nano_cfg(*REPLAY, f"objective.data={data}", PEAK))
