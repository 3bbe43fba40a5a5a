"""From the command line on the real digits: prepare, train a classify ViT teacher, refuse a
teacher that is no run in one line, distil the teacher into a CNN student with ScaleKD, resume
the student bit-exact (projector and head included), audit the teacher's images on the
student's ledger, probe the student and score its head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thrifty.cli.main import main
from thrifty.eval.image_classify import head_accuracy
from thrifty.runs import latest_checkpoint, load_model

CONFIGS = Path(__file__).parents[2] / "configs"


def weights(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(run_dir) / name))


def test_scalekd_on_digits_distils_resumes_audits_and_probes(tmp_path, capsys):
    data, runs = tmp_path / "digits", tmp_path / "runs"
    assert main(["prepare", "images:digits", "--out", str(data), "--quiet"]) == 0
    base = [f"data.path={data}", f"runs_dir={runs}", "train.threads=1", "train.eval_batches=1",
            "train.peak_flops=1e11", "train.batch_size=32"]  # fmt: skip
    assert main(["train", str(CONFIGS / "classify-digits.yaml"), *base, "name=teacher",
                 "train.max_steps=4", "model.n_layers=1"]) == 0  # fmt: skip
    student = [str(CONFIGS / "scalekd-digits.yaml"), *base, f"objective.teacher={runs / 'teacher'}",
               "train.max_steps=6", "train.checkpoint_every=3", "train.eval_every=3"]  # fmt: skip
    capsys.readouterr()
    assert main(["train", *student, "name=bad", f"objective.teacher={data}"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()  # one line that names the key
    assert line.startswith(f"error: objective.teacher={data}: ")
    assert main(["train", *student, "name=straight"]) == 0
    assert main(["train", *student, "name=broken"]) == 0
    broken, straight = runs / "broken", runs / "straight"
    shutil.rmtree(broken / "checkpoints" / "step_00000006")
    (broken / "checkpoints" / "latest").write_text("step_00000003")
    assert main(["train", *student, "name=broken", "--resume", "auto"]) == 0
    for name in ("model.safetensors", "objective.safetensors"):
        a, b = weights(straight, name), weights(broken, name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {k.split(".")[0] for k in weights(straight, "objective.safetensors")} == {
        "head", "projector"}  # fmt: skip

    capsys.readouterr()
    assert main(["audit", str(straight)]) == 0
    printed = capsys.readouterr().out
    assert "auxiliary model scalekd teacher" in printed and "1,438 images" in printed
    ledger = json.loads((straight / "ledger.json").read_text())
    assert ledger["words_seen"] == 6 * 32 and ledger["aux_models"][0]["words"] == 1438
    assert json.loads((broken / "ledger.json").read_text()) == ledger  # charged once, not twice
    (passed,) = ledger["exposure"]  # the teacher's 4 x 32 images over its 1,259
    assert passed["passes"] == pytest.approx(4 * 32 / 1259)
    state = json.loads((latest_checkpoint(straight) / "state.json").read_text())
    assert state["model_kind"] == "encoder"

    out = straight / "eval" / "probe.json"
    assert main(["probe", str(straight), "--sizes", "20", "--seeds", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert 0.1 < result["arms"]["pretrained"]["linear"]["test"] <= 1.0
    assert 0.0 <= head_accuracy(load_model(straight), data, "test") <= 1.0
