"""The spine on real data: prepare a BabyLM sample, train 30 steps, score BLiMP, export, audit."""

import json
import os
from pathlib import Path

import pytest
import torch

from thrifty.cli.main import main
from thrifty.runs import load_model

NANO = str(Path(__file__).parents[1] / "configs" / "nano.yaml")


@pytest.mark.slow
def test_prepare_train_score_export_audit(shared_data, tmp_path, capsys, monkeypatch):
    data, runs = tmp_path / "babylm-60k", tmp_path / "runs"
    argv = [
        "prepare",
        str(shared_data / "babylm" / "sample_300k"),
        "--budget-words",
        "60k",
        "--vocab-size",
        "1024",
        "--out",
        str(data),
        "--quiet",
    ]
    assert main(argv) == 0

    blimp = tmp_path / "blimp"  # two real paradigms keep the test fast
    blimp.mkdir()
    for name in ("determiner_noun_agreement_1", "regular_plural_subject_verb_agreement_1"):
        os.symlink(shared_data / "blimp" / f"{name}.jsonl.gz", blimp / f"{name}.jsonl.gz")
    argv = [
        "train",
        NANO,
        f"data.path={data}",
        f"runs_dir={runs}",
        "name=e2e",
        "objective.name=gpt_bert",
        "train.max_steps=30",
        "train.threads=1",
        f"eval.blimp_data={blimp}",
        "eval.max_pairs_per_paradigm=50",
    ]
    assert main(argv) == 0
    run = runs / "e2e"
    result = json.loads((run / "eval" / "blimp_mntp.json").read_text())
    assert result["n_pairs"] == 100 and 0.0 <= result["macro"] <= 1.0
    assert result["ledger"]["budget_words"] == 60_000

    capsys.readouterr()
    assert main(["audit", str(run)]) == 0
    assert "within the budget" in capsys.readouterr().out

    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["export", str(run), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ours = load_model(run).model
    ids = torch.randint(6, 1024, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours.logits(ours(ids)), atol=1e-4, rtol=1e-4)


def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing" in err and "\n" not in err
    assert not (tmp_path / "o").exists()
    assert main(["train", NANO, "train.lrr=1"]) == 2
    assert "did you mean 'lr'" in capsys.readouterr().err
