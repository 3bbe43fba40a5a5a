"""From the command line: prepare digit mosaics, pretrain with SoftCon a few steps, audit the
ledger in images, and probe the frozen encoder's multi-label mAP against a random one."""

from __future__ import annotations

import json
from pathlib import Path

from thrifty.cli.main import main

CONFIG = str(Path(__file__).parents[2] / "configs" / "softcon-mosaic.yaml")


def test_softcon_on_mosaics_trains_audits_and_probes_multilabel(tmp_path, capsys):
    data = tmp_path / "mosaic"
    assert main(["prepare", "images:mosaic", "--out", str(data), "--quiet"]) == 0
    run = tmp_path / "runs" / "sc"
    assert main(["train", CONFIG, f"data.path={data}", f"runs_dir={tmp_path / 'runs'}", "name=sc",
                 "train.threads=1", "train.max_steps=3", "train.batch_size=32",
                 "train.eval_every=3", "train.eval_batches=1", "train.checkpoint_every=3",
                 "model.n_layers=1", "train.peak_flops=1e11"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["audit", str(run)]) == 0
    assert "images" in capsys.readouterr().out
    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger["unit"] == "images" and ledger["words_seen"] == 3 * 32

    assert main(["probe", str(run), "--multilabel"]) == 0
    assert "mAP" in capsys.readouterr().out
    result = json.loads((run / "eval" / "probe_multilabel.json").read_text())
    for arm in ("pretrained", "random_init"):
        assert result["chance"] < result["arms"][arm]["test"] <= 1.0
