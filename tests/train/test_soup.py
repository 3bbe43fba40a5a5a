import json

import pytest
import torch
from safetensors.torch import load_file

from thrifty.cli.main import main
from thrifty.data.budget import Ledger
from thrifty.errors import UserError
from thrifty.runs import latest_checkpoint, load_model
from thrifty.train.loop import train
from thrifty.train.soup import average, make_soup, soup_ledger

PEAK = "train.peak_flops=1e11"  # skip measuring the CPU's matmul peak


def model_weights(path):
    return load_file(str(latest_checkpoint(path) / "model.safetensors"))


def test_soup_of_a_checkpoint_with_itself_is_the_identity(tiny_run, tmp_path):
    out = make_soup([tiny_run.run_dir, tiny_run.run_dir, tiny_run.run_dir], tmp_path / "soup")
    original, soup = model_weights(tiny_run.run_dir), model_weights(out)
    assert original.keys() == soup.keys()
    for key in original:
        assert torch.equal(original[key], soup[key]), key
    loaded = load_model(out)  # a proper run folder: verified checkpoint, config, tokenizer
    assert loaded.run_dir == out and loaded.tokenizer() is not None
    soup_info = json.loads((out / "soup.json").read_text())
    assert len(soup_info["ingredients"]) == 3
    assert Ledger.load(out).words_seen == 3 * 500  # every ingredient's words count
    assert loaded.ledger()["words_seen"] == 3 * 500


def test_soup_averages_two_trained_runs_uniformly(nano_cfg, tmp_path):
    a = nano_cfg("name=a", "train.max_steps=3", PEAK)
    b = nano_cfg("name=b", "train.max_steps=3", "train.seed=1", PEAK)
    train(a)
    train(b)
    out = tmp_path / "soup"
    assert main(["soup", str(a.run_dir), str(b.run_dir), "--out", str(out)]) == 0
    wa, wb, ws = model_weights(a.run_dir), model_weights(b.run_dir), model_weights(out)
    for key in ws:
        assert torch.allclose(ws[key], (wa[key] + wb[key]) / 2, atol=1e-7), key
    ledger = Ledger.load(out)
    la, lb = Ledger.load(a.run_dir), Ledger.load(b.run_dir)
    assert ledger.words_seen == pytest.approx(la.words_seen + lb.words_seen)
    assert ledger.budget_words == la.budget_words and ledger.train_words == la.train_words
    assert ledger.sources == la.sources  # the same data: the same budget
    assert main(["soup", str(a.run_dir), "--out", str(out)]) == 2  # exists: refused


def test_soup_of_incompatible_runs_names_the_tensor(nano_cfg, tmp_path):
    a = nano_cfg("name=a", "train.max_steps=1", PEAK)
    b = nano_cfg("name=b", "train.max_steps=1", "model.n_layers=1", PEAK)
    c = nano_cfg("name=c", "train.max_steps=1", "model.d_model=32", PEAK)
    for cfg in (a, b, c):
        train(cfg)
    with pytest.raises(UserError, match=r"tensor 'blocks\.1\..*' is in .*/a but not in .*/b"):
        make_soup([a.run_dir, b.run_dir], tmp_path / "ab")
    shapes = r"tensor '[\w.]+' has shape \(\d+, 64\) in .*/a but \(\d+, 32\) in .*/c"
    with pytest.raises(UserError, match=shapes):
        make_soup([a.run_dir, c.run_dir], tmp_path / "ac")
    assert not (tmp_path / "ab").exists() and not (tmp_path / "ac").exists()


def test_average_rejects_config_mismatch_with_equal_shapes(nano_cfg, tmp_path):
    a = nano_cfg("name=a", "train.max_steps=1", PEAK)
    b = nano_cfg("name=b", "train.max_steps=1", "model.rope_theta=500.0", PEAK)
    train(a)
    train(b)
    with pytest.raises(UserError, match="model.rope_theta"):
        make_soup([a.run_dir, b.run_dir], tmp_path / "soup")


def test_ledger_of_different_datasets_pools_their_words():
    base = {"budget_words": 100, "prepared_words": {"train": 90, "valid": 10}, "words_seen": 50}
    one = {**base, "sources": [{"path": "a", "sha256": "1", "words_used": 100}]}
    other = {**base, "sources": [{"path": "b", "sha256": "2", "words_used": 100}]}
    same = soup_ledger([one, one])
    assert same.charged_words() == 100 and same.words_seen == 100 and not same.violations()
    pooled = soup_ledger([one, other])
    assert pooled.charged_words() == 200 and pooled.budget_words == 100
    assert any("exceed the budget" in v for v in pooled.violations())


def test_ledger_of_fine_tunes_of_one_start_model_charges_it_once():
    base = {"budget_words": 100, "prepared_words": {"train": 90, "valid": 10}, "words_seen": 45}
    base["sources"] = [{"path": "a", "sha256": "1", "words_used": 100}]
    start = {"name": "start model runs/s", "words": 100, "texts": ["t"]}
    start_passes = {"name": "start model runs/s: training data", "words": 90, "passes": 2.0}
    replay = {"name": "replay set", "words": 90, "passes": 0.5}
    one = {**base, "aux_models": [start], "exposure": [start_passes, replay]}
    soup = soup_ledger([one, one])
    assert soup.aux_models == [start] and soup.charged_words() == 200  # not 300
    # the start model's passes once; each ingredient's own replay passes add up
    assert soup.exposure == [start_passes, replay, replay]
    assert soup.epochs == 1.0 and soup.max_passes()[0] == 1.0 + 2.0 + 0.5 + 0.5
    other = {**one, "aux_models": [{**start, "name": "start model runs/t"}]}
    assert soup_ledger([one, other]).charged_words() == 300  # two start models


def test_average_is_exact_for_identical_inputs_and_uniform_otherwise():
    x = torch.randn(5, 3)
    assert torch.equal(average([("a", {"w": x}), ("b", {"w": x}), ("c", {"w": x})])["w"], x)
    y = average([("a", {"w": torch.zeros(2)}), ("b", {"w": torch.ones(2)})])["w"]
    assert torch.equal(y, torch.full((2,), 0.5))
