"""From the command line: prepare digit caption pairs, pretrain with CLIP a few steps, audit the
ledger in pairs, and score zero-shot accuracy and retrieval against the untrained towers."""

from __future__ import annotations

import json
from pathlib import Path

from thrifty.cli.main import main

CONFIG = str(Path(__file__).parents[2] / "configs" / "clip-digits.yaml")


def test_clip_on_digit_pairs_trains_audits_and_scores_zero_shot(tmp_path, capsys):
    data = tmp_path / "pairs"
    assert main(["prepare", "pairs:digits", "--out", str(data), "--quiet"]) == 0
    run = tmp_path / "runs" / "clip"
    assert main(["train", CONFIG, f"data.path={data}", f"runs_dir={tmp_path / 'runs'}",
                 "name=clip", "train.threads=1", "train.max_steps=3", "train.batch_size=32",
                 "train.eval_every=3", "train.eval_batches=1", "train.checkpoint_every=3",
                 "model.n_layers=1", "objective.text_layers=1",
                 "train.peak_flops=1e11"]) == 0  # fmt: skip
    assert (run / "tokenizer.json").is_file()  # the caption tokenizer travels with the run
    capsys.readouterr()
    assert main(["audit", str(run)]) == 0
    out = capsys.readouterr().out
    assert "pairs" in out and "tokenizer: vocab" in out
    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger["unit"] == "pairs" and ledger["words_seen"] == 3 * 32

    assert main(["zero-shot", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "random_init" in printed and "chance" in printed
    result = json.loads((run / "eval" / "zero_shot.json").read_text())
    for arm in ("pretrained", "random_init"):
        scores = result["arms"][arm]
        assert 0 <= scores["zero_shot"]["accuracy"] <= 1
        assert set(scores["image_to_text"]) == {"R@1", "R@5", "chance"}
    # the untrained twin is the run's own start: rebuilt from the seed, not from the weights
    assert result["arms"]["random_init"] != result["arms"]["pretrained"]


def test_zero_shot_of_a_run_that_is_not_clip_names_the_key(tmp_path, capsys):
    data = tmp_path / "digits"
    assert main(["prepare", "images:digits", "--out", str(data), "--quiet"]) == 0
    mae = str(Path(CONFIG).with_name("mae-digits.yaml"))
    assert main(["train", mae, f"data.path={data}", f"runs_dir={tmp_path / 'runs'}", "name=m",
                 "train.threads=1", "train.max_steps=1", "train.batch_size=8",
                 "train.eval_every=0", "train.checkpoint_every=1", "model.n_layers=1",
                 "train.peak_flops=1e11"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["zero-shot", str(tmp_path / "runs" / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "objective.name is 'mae'" in err
