"""Label efficiency: stratified nested subsamples, labels-saved interpolation, and the output
files of a small end-to-end run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from thrifty.cli.main import main
from thrifty.errors import UserError
from thrifty.eval import label_efficiency as le
from thrifty.eval.finetune import Settings, stratified_order, stratified_subsample


def test_stratified_order_is_a_nested_balanced_deterministic_permutation():
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    order = stratified_order(labels, seed=4)
    assert sorted(order.tolist()) == list(range(100))
    for n in range(1, 101):
        counts = np.bincount(labels[order[:n]], minlength=3)
        assert np.all(np.abs(counts - n * np.array([0.7, 0.2, 0.1])) <= 1), n
    assert np.array_equal(order, stratified_order(labels, seed=4))
    assert not np.array_equal(order, stratified_order(labels, seed=5))
    small, large = stratified_subsample(labels, 16, 4), stratified_subsample(labels, 40, 4)
    assert set(small) <= set(large) and len(small) == 16


def test_split_labels_holds_out_a_stratified_share():
    labels = np.array([0, 1] * 50)
    sample = stratified_subsample(labels, 32, seed=0)
    train, valid = le.split_labels(labels, sample, 0.2, seed=0)
    assert len(valid) == 6 and not set(train) & set(valid)
    assert sorted([*train, *valid]) == sorted(sample)
    assert np.bincount(labels[valid]).tolist() == [3, 3]
    with pytest.raises(UserError, match="too small"):
        le.split_labels(labels, sample[:3], 0.5, seed=0)


def test_labels_needed_are_interpolated_in_log_n():
    sizes, means = [32, 64, 128], [0.5, 0.6, 0.8]
    assert le.reach(sizes, means, 0.7) == pytest.approx(64 * math.sqrt(2))
    assert le.reach(sizes, means, 0.4) == 32.0
    assert le.reach(sizes, means, 0.9) is None
    arms = {
        "pretrained": {"32": [0.7, 0.9], "64": [0.9, 0.9], "128": [0.9, 0.9]},
        "random_init": {"32": [0.5, 0.5], "64": [0.6, 0.6], "128": [0.8, 0.8]},
    }
    summary, saved = le.summarize(arms, sizes, None)
    assert summary["pretrained"]["32"]["mean"] == pytest.approx(0.8)
    assert summary["pretrained"]["32"]["std"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert saved["target"] == 0.8 and saved["random_init"] == pytest.approx(128)
    assert saved["pretrained"] == 32.0 and saved["factor"] == pytest.approx(4.0)
    _, user = le.summarize(arms, sizes, 0.95)
    assert user["target_source"] == "user" and user["factor"] is None


def test_parse_sizes():
    assert le.parse_sizes("32, 64,all") == [32, 64, "all"]
    with pytest.raises(UserError, match="'ten'"):
        le.parse_sizes("32,ten")


def test_end_to_end_writes_json_and_png(toy, tiny_run, shared_data, tmp_path, monkeypatch):
    seen = []
    real_fit = le.fit

    def recording_fit(model, train, valid, *args, **kwargs):
        seen.append(({r.tobytes() for r in train.ids}, {r.tobytes() for r in valid.ids}))
        return real_fit(model, train, valid, *args, **kwargs)

    monkeypatch.setattr(le, "fit", recording_fit)
    settings = Settings(lr=1e-3, batch_size=8, max_epochs=2, patience=1, max_seq_len=24,
                        min_steps_per_epoch=2)  # fmt: skip
    result = le.label_efficiency(
        tiny_run.run_dir, "sst2", data_root=shared_data, sizes=[16, 32], seeds=[0, 1],
        max_eval_examples=60, settings=settings, out=tmp_path,
    )  # fmt: skip
    # Both arms of a (seed, N) see the same examples; within a seed the samples are nested.
    assert len(seen) == 2 * 2 * 2
    for pretrained, random_init in zip(seen[::2], seen[1::2]):
        assert pretrained == random_init
    for seed in range(2):
        small, large = seen[4 * seed], seen[4 * seed + 2]
        assert small[0] | small[1] <= large[0] | large[1]
    data = json.loads((tmp_path / "label_efficiency_sst2.json").read_text())
    assert data["task"] == "sst2" and data["metric"] == "auc" and data["sizes"] == [16, 32]
    for arm in ("pretrained", "random_init"):
        for n in ("16", "32"):
            values = data["arms"][arm][n]
            assert len(values) == 2 and all(0 <= v <= 1 for v in values)
            assert data["summary"][arm][n]["mean"] == pytest.approx(np.mean(values))
    assert {"target", "pretrained", "random_init", "factor"} <= set(data["labels_saved"])
    assert data["heldout"] == {"split": "glue/sst2/test.tsv", "n": 60}  # GLUE's real dev set
    assert data["ledger"] == toy.ledger
    png = (tmp_path / "label_efficiency_sst2.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert result["plot"].endswith(".png")


def test_cli_rejects_sizes_beyond_the_pool(tiny_run, shared_data, capsys):
    code = main(["label-efficiency", str(tiny_run.run_dir), "--task", "wsc", "--sizes",
                 "32,100000", "--data-root", str(shared_data)])  # fmt: skip
    assert code == 2 and "exceeds the 554 wsc training examples" in capsys.readouterr().err


def test_each_arm_picks_its_learning_rate_on_its_own_labels(tiny_run, shared_data, tmp_path):
    settings = Settings(batch_size=8, max_epochs=1, patience=1, max_seq_len=16)
    data = le.label_efficiency(
        tiny_run.run_dir, "sst2", data_root=shared_data, sizes=[16], seeds=[0],
        max_eval_examples=20, settings=settings, lrs=[1e-4, 1e-2], pooling="mean",
        out=tmp_path, plot=False,
    )  # fmt: skip
    assert data["settings"]["lrs"] == [1e-4, 1e-2] and data["settings"]["pooling"] == "mean"
    for row in data["runs"]:
        tried = row["valid_by_lr"]
        assert set(tried) == {"0.0001", "0.01"}
        assert tried[f"{row['lr']:g}"] == max(tried.values())  # chosen on the early-stopping split


def test_mean_pooling_averages_real_tokens_only():
    from thrifty.models.heads import pool

    hidden = torch.arange(12.0).view(1, 4, 3).repeat(2, 1, 1)
    padding = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out = pool(hidden, padding, "mean")
    assert torch.equal(out[0], hidden[0, :2].mean(0)) and torch.equal(out[1], hidden[1].mean(0))
