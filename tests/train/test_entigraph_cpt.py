"""EntiGraph continued pretraining from the command line: a world, its synthetic corpus prepared
with the start model's tokenizer, train.init_from plus 10% replay, a bit-exact resume, export,
the audit listing the synthetic words, and closed-book QA on the world's questions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thrifty.cli.main import main
from thrifty.runs import latest_checkpoint
from thrifty.train.loop import train

PEAK = "train.peak_flops=1e11"
NANO = str(Path(__file__).parents[2] / "configs" / "nano.yaml")


def weights(run_dir):
    return load_file(str(latest_checkpoint(run_dir) / "model.safetensors"))


def test_synthesize_continue_resume_export_audit_and_eval(nano_cfg, tiny_data, tmp_path, capsys):
    start = nano_cfg("name=start", "train.max_steps=4", "train.eval_every=0", PEAK)
    train(start)
    world, syn = tmp_path / "world", tmp_path / "syn"
    assert main(["synthesize-world", "--out", str(world), "--docs", "3", "--seed", "1"]) == 0
    assert main(["synthesize", str(world), "--out", str(syn), "--words", "4000",
                 "--tokenizer", str(start.run_dir / "tokenizer.json"),
                 "--valid-fraction", "0.05"]) == 0  # fmt: skip
    common = [NANO, f"data.path={syn}", f"runs_dir={tmp_path / 'runs'}", "train.threads=1",
              f"train.init_from={start.run_dir}", "objective.name=replay",
              f"objective.data={tiny_data}", "objective.windows=16", "objective.ratio=0.1111",
              "objective.replay_weight=0.1", "objective.constraint=none",
              "objective.valid_windows=4", "train.max_steps=6", "train.checkpoint_every=3",
              "train.eval_every=3", PEAK]  # fmt: skip
    assert main(["train", *common, "name=straight"]) == 0
    assert main(["train", *common, "name=broken"]) == 0
    broken = tmp_path / "runs" / "broken"
    shutil.rmtree(broken / "checkpoints" / "step_00000006")
    (broken / "checkpoints" / "latest").write_text("step_00000003")
    assert main(["train", *common, "name=broken", "--resume", "auto"]) == 0
    straight = tmp_path / "runs" / "straight"
    a, b = weights(straight), weights(broken)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert any("replay_loss" in r for r in rows) and any("val_old_loss" in r for r in rows)

    capsys.readouterr()
    assert main(["audit", str(straight)]) == 0
    audit = capsys.readouterr().out
    assert "model-generated training words (not charged" in audit
    assert "EntiGraph generator template" in audit and "EntiGraph source documents" in audit
    assert "start model" in audit and "replay set (16 windows" in audit
    ledger = json.loads((straight / "ledger.json").read_text())
    assert ledger["synthetic_words"] >= 4000

    assert main(["export", str(straight), "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "config.json").is_file()
    assert main(["eval", str(straight), "--task", "closed_book_qa", "--data-root", str(world),
                 "--backend", "causal"]) == 0  # fmt: skip
    result = json.loads((straight / "eval" / "closed_book_qa_causal.json").read_text())
    assert result["n_items"] > 0 and 0 <= result["score"] <= 1
    assert result["ledger"]["synthetic_words"] == ledger["synthetic_words"]


def test_the_shipped_recipe_replays_one_row_in_ten():
    """The card's rr = 0.1: each training row comes from replay with probability 0.1."""
    from thrifty.config import load_config

    cfg = load_config(Path(__file__).parents[2] / "configs" / "entigraph-cpt.yaml")
    obj, rows = cfg.objective, cfg.train.batch_size
    replayed = max(1, round(obj["ratio"] * rows))  # as objectives/replay.py draws them
    assert replayed / (rows + replayed) == pytest.approx(0.1)
    assert obj["replay_weight"] == pytest.approx(0.1) and obj["constraint"] == "none"
    assert cfg.train.init_from and cfg.objective["base"] == {"name": "causal_lm"}
