"""Every pass over a word counts toward the epoch rule: a continuation carries its start model's
passes, replayed windows count their replays; and the tokenizer of a continuation's data is
charged once, not twice."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from thrifty.cli.main import main
from thrifty.data.budget import Ledger
from thrifty.data.prepare import load_manifest, prepare
from thrifty.train.loop import train

PEAK = "train.peak_flops=1e11"  # measuring the CPU's matmul peak costs seconds per run
WORDS = "the a dog cat child ball red big runs sees park home book with to of".split()


@pytest.fixture
def small_data(tmp_path: Path) -> Path:
    """About 40 windows of 16 tokens: ten epochs are a few dozen nano steps."""
    rng = random.Random(0)
    text = "\n".join(" ".join(rng.choices(WORDS, k=rng.randint(4, 12))) for _ in range(60))
    (tmp_path / "small.txt").write_text(text + "\n")
    out = tmp_path / "small"
    prepare([str(tmp_path / "small.txt")], out, budget_words=None, vocab_size=280,
            valid_fraction=0.1, progress=False)  # fmt: skip
    return out


def settings(data: Path, *extra: str) -> list[str]:
    common = [f"data.path={data}", "data.seq_len=16", "train.eval_every=0", PEAK]
    return [*common, "train.checkpoint_every=0", "train.log_every=50", *extra]


def test_a_continuation_on_the_same_words_adds_the_start_models_passes(
    nano_cfg, small_data, capsys
):
    start = nano_cfg("name=start", *settings(small_data, "train.max_steps=null"),
                     "train.max_epochs=8")  # fmt: skip
    train(start)
    cont = nano_cfg("name=cont", *settings(small_data, "train.max_steps=null"),
                    "train.max_epochs=4", f"train.init_from={start.run_dir}")  # fmt: skip
    train(cont)
    ledger = Ledger.load(cont.run_dir)
    (entry,) = [e for e in ledger.exposure if e["name"].startswith("start model")]
    assert entry["passes"] == pytest.approx(Ledger.load(start.run_dir).epochs, rel=1e-9)
    assert entry["sources"] == [s["sha256"] for s in ledger.sources]
    passes, names = ledger.max_passes()
    assert passes == pytest.approx(ledger.epochs + entry["passes"]) and passes > 10
    assert main(["audit", str(start.run_dir)]) == 0  # each run alone is within the rule
    assert ledger.epochs <= 4 and main(["audit", str(cont.run_dir)]) == 1
    assert "epochs exceed the maximum of 10 (passes over the same words" in capsys.readouterr().out


def test_replayed_windows_count_their_passes_and_resume_to_the_same_count(
    nano_cfg, small_data, capsys
):
    # 2 replay windows and round(0.25 x 8) = 2 replay rows: both windows in every micro-batch
    replay = ["objective.name=replay", f"objective.data={small_data}", "objective.windows=2"]
    replay += ["objective.ratio=0.25", "objective.constraint=none", "objective.valid_windows=0"]
    extra = ["train.max_steps=6", "train.grad_accum=2", "train.checkpoint_every=3"]
    cfg = nano_cfg(*settings(small_data, *replay, *extra))
    train(cfg)
    ledger = Ledger.load(cfg.run_dir)
    (entry,) = [e for e in ledger.exposure if e["name"].startswith("replay set")]
    assert entry["passes"] == 12  # 6 steps x 2 micro-batches
    assert entry["sources"] == [s["sha256"] for s in ledger.sources]  # the run's own file
    assert ledger.max_passes()[0] == pytest.approx(12 + ledger.epochs)
    assert main(["audit", str(cfg.run_dir)]) == 1
    assert "exceed the maximum of 10" in capsys.readouterr().out
    # resumed after step 3, the count is rebuilt to the same number
    ckpts = cfg.run_dir / "checkpoints"
    shutil.rmtree(ckpts / "step_00000006")
    (ckpts / "latest").write_text("step_00000003")
    train(cfg, resume="auto")
    assert Ledger.load(cfg.run_dir).exposure == ledger.exposure


def test_data_prepared_with_the_start_models_tokenizer_charges_it_once(nano_cfg, tmp_path, toy):
    start = nano_cfg("name=start", "train.max_steps=2", "train.eval_every=0", PEAK)
    train(start)
    (tmp_path / "new.txt").write_text("\n".join(toy.texts(200, seed=9)) + "\n")
    prepare([str(tmp_path / "new.txt")], tmp_path / "new", budget_words=None, valid_fraction=0.1,
            tokenizer_path=start.run_dir / "tokenizer.json", progress=False)  # fmt: skip
    data = Ledger.from_dict(load_manifest(tmp_path / "new")["ledger"])
    start_ledger = Ledger.load(start.run_dir)
    # alone, the new dataset pays for the tokenizer it was encoded with
    assert data.tokenizer_words() == start_ledger.train_words > 0
    cont = nano_cfg("name=cont", f"data.path={tmp_path / 'new'}", "train.max_steps=1",
                    f"train.init_from={start.run_dir}", "train.eval_every=0", PEAK)  # fmt: skip
    train(cont)
    run = Ledger.load(cont.run_dir)
    assert run.tokenizer_words() == 0  # the start model's charge already holds those words
    prepared = sum(data.prepared_words.values())
    assert run.charged_words() == prepared + start_ledger.charged_words()
