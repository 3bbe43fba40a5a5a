"""End-to-end fine-tuning of an image encoder on N labels (``thrifty probe --finetune``), on
the real digits with a nano MAE encoder: the protocol's samples, arms and selection, the JSON,
and the report's section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from thrifty.analysis.report_data import RunData
from thrifty.analysis.report_probes import image_finetune_section
from thrifty.cli.main import main
from thrifty.errors import UserError
from thrifty.eval import image_finetune as imf
from thrifty.eval.finetune import fit
from thrifty.runs import load_model
from thrifty.train.start import initial_model

CONFIG = str(Path(__file__).parents[2] / "configs" / "mae-digits.yaml")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """(run folder, image set) of a 2-layer MAE trained 6 steps on the real digits."""
    root = tmp_path_factory.mktemp("image_finetune")
    data = root / "digits"
    assert main(["prepare", "images:digits", "--out", str(data), "--quiet"]) == 0
    assert main(["train", CONFIG, f"data.path={data}", f"runs_dir={root / 'runs'}",
                 "train.threads=1", "train.max_steps=6", "train.checkpoint_every=6",
                 "train.eval_every=6", "train.eval_batches=1", "model.n_layers=2",
                 "name=mae"]) == 0  # fmt: skip
    return root / "runs" / "mae", data


def test_finetune_from_the_cli_and_in_the_report(encoder, tmp_path):
    run, data = encoder
    assert main(["probe", str(run), "--finetune", "--sizes", "10,30", "--seeds", "2",
                 "--lrs", "1e-3,3e-3", "--max-epochs", "2", "--threads", "1"]) == 0  # fmt: skip
    result = json.loads((run / "eval" / "finetune_images.json").read_text())
    assert result["sizes"] == [10, 30] and result["seeds"] == [0, 1]
    test_count = json.loads((data / "manifest.json").read_text())["counts"]["test"]
    assert result["heldout"] == {"split": "test", "n": test_count}
    assert len(result["runs"]) == 2 * 2 * 2  # seeds x sizes x arms
    for row in result["runs"]:
        assert row["lr"] in (1e-3, 3e-3) and set(row["valid_by_lr"]) == {"0.001", "0.003"}
        assert 0.0 <= row["accuracy"] <= 1.0
        # one digit per class cannot spare a held-out share; 30 holds out one per class
        expected = ("training labels", 10) if row["n"] == 10 else ("held-out share", 20)
        assert (row["selection"], row["train_labels"]) == expected
    for arm in ("pretrained", "random_init"):
        assert len(result["arms"][arm]["30"]) == 2 and result["summary"][arm]["30"]["n"] == 2
    assert {"target", "pretrained", "random_init", "factor"} <= result["labels_saved"].keys()
    assert (run / "eval" / "finetune_images.png").is_file()

    assert main(["report", str(run), "--out", str(tmp_path / "report.html")]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "Image encoders fine-tuned on N labels" in text and "| mae | pretrained |" in text
    assert "| mae | random_init |" in text and "N=30" in text and "image_finetune" in text
    assert "Fine-tuning\n" not in text  # not mistaken for a text task's finetune_<task>.json


def test_both_arms_start_from_their_encoder_and_the_same_head(encoder):
    run, data = encoder
    loaded = load_model(run)
    random_init = initial_model(loaded.cfg)
    arms = {
        arm: imf.image_classifier(loaded, weights.state_dict(), 10, seed=4, dropout=0.1)
        for arm, weights in (("pretrained", loaded.model), ("random_init", random_init))
    }
    head_a, head_b = (arms[a].head.state_dict() for a in ("pretrained", "random_init"))
    assert all(torch.equal(head_a[k], head_b[k]) for k in head_a)
    for arm, source in (("pretrained", loaded.model), ("random_init", random_init)):
        backbone = arms[arm].backbone.state_dict()
        assert all(torch.equal(v, backbone[k]) for k, v in source.state_dict().items())
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    pool = imf._image_set(data, "train")
    train, valid = pool.subset(np.arange(40)), pool.subset(np.arange(40, 60))
    settings = imf.default_settings(max_epochs=1, patience=1)
    fit(arms["pretrained"], train, valid, settings, seed=0, select="accuracy",
        metrics=("accuracy",))  # fmt: skip
    tuned = arms["pretrained"].backbone.state_dict()
    assert any(not torch.equal(before[k], tuned[k]) for k in before)  # end to end
    assert all(torch.equal(before[k], v) for k, v in loaded.model.state_dict().items())


def test_samples_are_shared_nested_and_valid_is_never_read(encoder, monkeypatch):
    run, data = encoder
    loaded = load_model(run)
    read, seen = [], {}
    load_split = imf.load_split
    monkeypatch.setattr(imf, "load_split", lambda p, s: read.append(s) or load_split(p, s))

    def tuned_arm(build, arm, seed, n, sets, metric, s, grid):
        train, valid, test = sets
        rows = {tuple(img.flatten().tolist()) for img in torch.cat([train.images, valid.images])}
        seen[arm, seed, n] = (rows, train.labels.tolist(), len(test))
        return {"seed": seed, "n": n, "arm": arm, metric: 0.5, "lr": grid[0]}

    monkeypatch.setattr(imf, "tuned_arm", tuned_arm)
    result = imf.finetune_images(loaded, initial_model(loaded.cfg), data, sizes=[10, 40, 20],
                                 seeds=[0, 1], lrs=[1e-3])  # fmt: skip
    assert "valid" not in read and result["sizes"] == [10, 20, 40]
    for seed in (0, 1):
        for n in (10, 20, 40):
            assert seen["pretrained", seed, n] == seen["random_init", seed, n]
            assert len(set(seen["pretrained", seed, n][1])) == 10  # every class trains
        assert seen["pretrained", seed, 10][0] <= seen["pretrained", seed, 20][0]
        assert seen["pretrained", seed, 20][0] <= seen["pretrained", seed, 40][0]
    assert seen["pretrained", 0, 40][0] != seen["pretrained", 1, 40][0]
    with pytest.raises(UserError, match="--sizes: N=5000 exceeds the 1259 training images"):
        imf.finetune_images(loaded, initial_model(loaded.cfg), data, sizes=[5000])


def test_the_report_section_tolerates_partial_results():
    full = {"sizes": [10, 20], "labels_saved": {"target": 0.5, "pretrained": 12.0,
            "random_init": None, "factor": None},
            "summary": {"pretrained": {"10": {"mean": 0.4, "std": 0.1}, "20": {"mean": 0.6}},
                        "random_init": {"10": {"mean": 0.3, "std": 0.0}}}}  # fmt: skip
    runs = [RunData("a", Path("a"), image_finetune=full), RunData("b", Path("b"))]
    runs.append(RunData("c", Path("c"), image_finetune={"sizes": "oops", "summary": None}))
    section = image_finetune_section(runs)
    table, saved = section.blocks[1], section.blocks[2]
    assert table.headers == ["run", "encoder", "N=10", "N=20"]
    assert table.rows[0] == ["a", "pretrained", "40.0 ± 10.0", "60.0"]
    assert table.rows[1] == ["a", "random_init", "30.0 ± 0.0", "—"]
    assert saved.rows[0] == ["a", "50.0", "12", "not reached", "—"]
    assert image_finetune_section([RunData("b", Path("b"))]) is None
