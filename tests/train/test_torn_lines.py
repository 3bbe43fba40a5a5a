"""A kill during an append leaves a torn last line in a JSON-lines file; every file thrifty
appends to must still be read (and resumed) after it, while damage in the middle is refused."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from thrifty.analysis.search import EvalCache
from thrifty.analysis.sweep import read_index
from thrifty.errors import UserError
from thrifty.runs import latest_checkpoint
from thrifty.train.loop import train

TORN = '{"step": 16, "loss": 2.3'  # what a kill halfway through a write leaves


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def died_after_step_15(cfg):
    """Train ``cfg`` to the end, then make the run look killed while writing step 16's row."""
    train(cfg)
    ckpts = cfg.run_dir / "checkpoints"
    shutil.rmtree(ckpts / "step_00000020")
    (ckpts / "latest").write_text("step_00000010")
    metrics = cfg.run_dir / "metrics.jsonl"
    kept = [line for line in metrics.read_text().splitlines() if json.loads(line)["step"] <= 15]
    metrics.write_text("\n".join(kept) + "\n" + TORN)
    return metrics


def test_resume_auto_after_a_torn_metrics_line(nano_cfg):
    straight = nano_cfg("name=straight")
    train(straight)
    broken = nano_cfg("name=broken")
    metrics = died_after_step_15(broken)
    train(broken, resume="auto")
    weights = [
        load_file(str(latest_checkpoint(c.run_dir) / "model.safetensors"))
        for c in (straight, broken)
    ]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    # every line is whole again, and the rows (losses included) are the uninterrupted run's
    keys = ("step", "loss", "val_loss")
    got = [{k: r[k] for k in keys if k in r} for r in rows(metrics)]
    want = [{k: r[k] for k in keys if k in r} for r in rows(straight.run_dir / "metrics.jsonl")]
    assert got == want


def test_damage_before_the_last_metrics_line_names_file_and_line(nano_cfg):
    cfg = nano_cfg("name=damaged")
    metrics = died_after_step_15(cfg)
    lines = metrics.read_text().splitlines()
    lines[1] = lines[1][:-5]  # a row in the middle, cut short
    metrics.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"metrics\.jsonl:2: "):
        train(cfg, resume="auto")


def test_sweep_index_with_a_torn_last_line(tmp_path):
    index = tmp_path / "index.jsonl"
    good = [{"name": "a", "status": "done"}, {"name": "b", "status": "running"}]
    index.write_text("".join(json.dumps(r) + "\n" for r in good) + '{"name": "c", "sta')
    assert read_index(tmp_path) == {"a": good[0], "b": good[1]}
    index.write_text('{"name": "a"\n' + json.dumps(good[1]) + "\n")
    with pytest.raises(UserError, match=r"index\.jsonl:1: "):
        read_index(tmp_path)


def test_search_cache_appends_on_a_fresh_line_after_a_torn_one(tmp_path):
    path = tmp_path / "search.jsonl"
    path.write_text(json.dumps({"point": {"train.lr": 0.001}, "loss": 3.0}) + "\n" + '{"point": {')
    cache = EvalCache(path)
    assert cache.get({"train.lr": 0.001}) == 3.0
    cache.put({"train.lr": 0.002}, 2.5)
    again = EvalCache(path)  # the new row must not be glued onto the fragment
    assert again.get({"train.lr": 0.002}) == 2.5 and len(again) == 2
