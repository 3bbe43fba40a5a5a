"""From the command line on the real digits: prepare, train a masked autoencoder, resume
bit-exact, audit the ledger in images, probe the frozen encoder against a random one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from thrifty.cli.main import main
from thrifty.runs import latest_checkpoint

CONFIG = str(Path(__file__).parents[2] / "configs" / "mae-digits.yaml")


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(run_dir) / "model.safetensors"))


def test_mae_on_digits_trains_resumes_audits_and_probes(tmp_path, capsys):
    data = tmp_path / "digits"
    assert main(["prepare", "images:digits", "--out", str(data), "--quiet"]) == 0
    common = [CONFIG, f"data.path={data}", f"runs_dir={tmp_path / 'runs'}", "train.threads=1",
              "train.max_steps=6", "train.checkpoint_every=3", "train.eval_every=3",
              "train.eval_batches=1", "model.n_layers=2", "train.peak_flops=1e11"]  # fmt: skip
    assert main(["train", *common, "name=straight"]) == 0
    assert main(["train", *common, "name=broken"]) == 0
    broken, straight = tmp_path / "runs" / "broken", tmp_path / "runs" / "straight"
    shutil.rmtree(broken / "checkpoints" / "step_00000006")
    (broken / "checkpoints" / "latest").write_text("step_00000003")
    assert main(["train", *common, "name=broken", "--resume", "auto"]) == 0
    a, b = weights(straight), weights(broken)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    capsys.readouterr()
    assert main(["audit", str(straight)]) == 0
    assert "images" in capsys.readouterr().out
    ledger = json.loads((straight / "ledger.json").read_text())
    assert ledger["unit"] == "images" and ledger["words_seen"] == 6 * 64
    state = json.loads((latest_checkpoint(straight) / "state.json").read_text())
    assert state["model_kind"] == "encoder"

    out = straight / "eval" / "probe.json"
    assert main(["probe", str(straight), "--sizes", "20,100", "--seeds", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    for arm in ("pretrained", "random_init"):
        assert 0.1 < result["arms"][arm]["linear"]["test"] <= 1.0
        assert result["few_labels"][arm]["100"]["n"] == 2 and result["seeds"] == [0, 1]

    report = tmp_path / "report.html"
    assert main(["report", str(straight), "--out", str(report)]) == 0
    text = report.with_suffix(".md").read_text()
    assert "budget (images)" in text and "Frozen-feature probes" in text
    assert "| straight | pretrained | linear |" in text and "Zero-shot" not in text
