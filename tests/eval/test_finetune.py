"""Fine-tuning: pooling reads real tokens, the loop learns, metrics match hand counts, results
are reproducible, and missing data is a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from thrifty.cli.main import main
from thrifty.data.tokenizer import BOS_ID, PAD_ID, SEP_ID
from thrifty.errors import UserError
from thrifty.eval.finetune import (
    Example,
    Settings,
    accuracy,
    build_classifier,
    encode,
    f1,
    finetune_task,
    fit,
    get_task,
    mcc,
    predict,
    read_split,
    roc_auc,
)
from thrifty.eval.finetune.classifier import collate
from thrifty.eval.finetune.metrics import average_ranks
from thrifty.runs import load_model

SHORT = "the cat sat"
LONG = " ".join(["the big red dog ran in the park and then it sat on the mat"] * 3)


@pytest.fixture(scope="module")
def masked_run(toy, tmp_path_factory):
    return toy.build_run(tmp_path_factory.mktemp("runs") / "masked", objective="masked_lm")


# ---------------------------------------------------------------- pooling and padding


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_pooled_features_do_not_depend_on_batch_padding(kind, tiny_run, masked_run):
    run = tiny_run if kind == "causal" else masked_run
    model = build_classifier(load_model(run.run_dir), 2, seed=0).eval()
    assert model.pooling == ("last" if kind == "causal" else "first")
    rows = encode(run.tokenizer, [Example(SHORT, None, 0), Example(LONG, None, 1)], 64).ids
    assert len(rows[1]) > 3 * len(rows[0])  # the short row gets many pads when batched
    with torch.no_grad():
        alone = model.features(*collate(rows[:1]))[0]
        ids, padding = collate(rows)
        batched = model.features(ids, padding)[0]
        assert ids[0, -1] == PAD_ID
        torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
        if kind == "causal":
            # Reading the last *position*, as the buggy pipeline did, reads a pad.
            hidden = model.backbone(ids, causal=True, padding=padding)
            assert not torch.allclose(hidden[0, -1], alone, atol=1e-3)


def test_causal_predictions_vary_over_a_batch(toy, tiny_run):
    model = build_classifier(load_model(tiny_run.run_dir), 2, seed=0).eval()
    texts = list(dict.fromkeys(toy.texts(16, seed=3))) + [LONG]
    data = encode(tiny_run.tokenizer, [Example(t, None, 0) for t in texts], 64)
    logits = predict(model, data, batch_size=32)
    margins = logits[:, 1] - logits[:, 0]
    assert len(np.unique(np.round(margins, 6))) == len(texts)


def test_inputs_are_bos_a_sep_b_and_truncate_the_longer_segment(tiny_run):
    tok = tiny_run.tokenizer
    ids = encode(tok, [Example("the cat", "a dog", 1)], 64).ids[0]
    a = tok.encode("the cat", add_special_tokens=False).ids
    b = tok.encode("a dog", add_special_tokens=False).ids
    assert ids.tolist() == [BOS_ID, *a, SEP_ID, *b]
    long = encode(tok, [Example(SHORT, LONG, 0)], 24).ids[0]
    short = tok.encode(SHORT, add_special_tokens=False).ids
    assert len(long) == 24 and long[: len(short) + 2].tolist() == [BOS_ID, *short, SEP_ID]
    single = encode(tok, [Example(LONG, None, 0)], 10).ids[0]
    assert len(single) == 10 and single[0] == BOS_ID


def test_babylm_input_formats(shared_data):
    wsc = read_split(get_task("wsc"), shared_data, "valid")[0]
    assert wsc.text_a == 'Does "he" refer to "Joe" in this passage?'
    multirc = read_split(get_task("multirc"), shared_data, "valid")[0]
    assert multirc.text_a.startswith("Question: ") and " Answer: " in multirc.text_a
    boolq = read_split(get_task("boolq"), shared_data, "valid")[0]
    assert boolq.text_a.endswith("grade") and len(boolq.text_b) > len(boolq.text_a)
    sst2 = read_split(get_task("sst2"), shared_data, "valid")
    assert len(sst2) == 6735 and sst2[0].text_b is None
    assert get_task("mrpc").metric == get_task("qqp").metric == "f1"
    assert get_task("cola").metric == "mcc" and get_task("mnli").num_labels == 3


# ---------------------------------------------------------------- metrics


def test_metrics_against_hand_counts():
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([1, 0, 0, 1, 1, 0])  # tp 2, fn 1, fp 1, tn 2
    assert accuracy(y, p) == pytest.approx(4 / 6)
    assert f1(y, p) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert mcc(y, p) == pytest.approx((2 * 2 - 1 * 1) / np.sqrt(3 * 3 * 3 * 3))
    assert f1([0, 0], [0, 0]) == 0.0 and mcc([1, 1], [1, 1]) == 0.0
    assert mcc([0, 1, 2, 2], [0, 1, 2, 2]) == pytest.approx(1.0)
    # 3 classes, c = 3 correct of s = 5; t = (2, 2, 1), p = (1, 2, 2)
    three = mcc([0, 0, 1, 1, 2], [0, 1, 1, 2, 2])
    assert three == pytest.approx((3 * 5 - (2 + 4 + 2)) / np.sqrt((25 - 9) * (25 - 9)))


def test_auc_counts_ties_as_half():
    assert average_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [3.5, 1.0, 3.5, 2.0]
    # pairs (pos, neg): (.5,.1)=1 (.5,.5)=.5 (.9,.1)=1 (.9,.5)=1 -> 3.5 / 4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(0.875)
    assert roc_auc([0, 1, 0, 1], [2, 2, 2, 2]) == 0.5
    assert roc_auc([1, 1, 0], [0.0, 1.0, 2.0]) == 0.0
    with pytest.raises(ValueError):
        roc_auc([1, 1], [0.3, 0.4])


# ---------------------------------------------------------------- training


def test_finetuning_lowers_the_training_loss(tiny_run, shared_data):
    loaded = load_model(tiny_run.run_dir)
    examples = read_split(get_task("sst2"), shared_data, "train")[:64]
    data = encode(tiny_run.tokenizer, examples, 32)
    model = build_classifier(loaded, 2, seed=0)
    s = Settings(lr=1e-3, batch_size=16, max_epochs=5, patience=5, max_seq_len=32)
    result = fit(model, data, data, s, seed=0, select="accuracy", metrics=("accuracy",))
    losses = [row["train_loss"] for row in result.history]
    assert result.epochs_run == 5 and losses[-1] < 0.8 * losses[0]
    # The model handed back holds the best epoch's weights.
    best = result.history[result.best_epoch - 1]
    assert accuracy(data.labels, predict(model, data).argmax(-1)) == best["accuracy"]


@pytest.fixture(scope="module")
def rte_result(tiny_run, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "finetune_rte.json"
    kwargs = dict(data_root=shared_data, max_train_examples=40, max_seq_len=48, lr=1e-3)
    kwargs |= dict(batch_size=16, max_epochs=2, patience=1)
    finetune_task(tiny_run.run_dir, "rte", seeds=(0, 1), out=out, **kwargs)
    again = finetune_task(tiny_run.run_dir, "rte", seeds=(0,), write=False, **kwargs)
    return json.loads(out.read_text()), again


def test_result_json_schema(rte_result, toy):
    result, _ = rte_result
    assert result["task"] == "rte" and result["metric"] == "accuracy"
    assert result["metrics"] == ["accuracy", "f1", "mcc"] and result["seeds"] == [0, 1]
    for row in result["per_seed"]:
        assert {"seed", "accuracy", "f1", "mcc", "best_epoch", "epochs_run", "seconds"} <= set(row)
        assert 1 <= row["best_epoch"] <= row["epochs_run"] <= 2
    values = [row["accuracy"] for row in result["per_seed"]]
    assert result["mean"]["accuracy"] == pytest.approx(np.mean(values))
    assert result["std"]["accuracy"] == pytest.approx(np.std(values, ddof=1))
    settings = result["settings"]
    assert settings["n_train"] == 40 and settings["n_eval"] == 139 and settings["lr"] == 1e-3
    assert settings["pooling"] == "last" and settings["input"] == "<s> A <sep> B"
    assert result["ledger"] == toy.ledger and result["step"] == 1
    assert result["checkpoint"] == "step_00000001"


def test_same_seed_same_result(rte_result):
    result, again = rte_result
    assert again["per_seed"][0]["history"] == result["per_seed"][0]["history"]
    first, second = (row["history"] for row in result["per_seed"])
    assert first[0]["train_loss"] != second[0]["train_loss"]


def test_random_init_keeps_the_architecture_but_not_the_weights(tiny_run):
    loaded = load_model(tiny_run.run_dir)
    pre = build_classifier(loaded, 2, seed=0)
    fresh = build_classifier(loaded, 2, pretrained=False, seed=0)
    assert pre.backbone.embed.weight.shape == fresh.backbone.embed.weight.shape
    assert torch.equal(pre.backbone.embed.weight, loaded.model.embed.weight)
    assert not torch.equal(fresh.backbone.embed.weight, loaded.model.embed.weight)
    torch.testing.assert_close(pre.head.out.weight, fresh.head.out.weight)  # same head init


# ---------------------------------------------------------------- errors


def test_missing_train_file_names_it_and_the_tasks_that_have_data(tiny_run, shared_data, capsys):
    with pytest.raises(UserError, match=r"boolq\.train\.jsonl.*tasks with train data.*rte"):
        finetune_task(tiny_run.run_dir, "boolq", data_root=shared_data)
    code = main(["finetune", str(tiny_run.run_dir), "--task", "multirc",
                 "--data-root", str(shared_data)])  # fmt: skip
    assert code == 2 and "multirc.train.jsonl" in capsys.readouterr().err


def test_bad_task_and_data_root(tiny_run, tmp_path, monkeypatch):
    with pytest.raises(UserError, match="did you mean 'rte'"):
        finetune_task(tiny_run.run_dir, "rte2", data_root=tmp_path)
    monkeypatch.delenv("THRIFTY_DATA", raising=False)
    with pytest.raises(UserError, match="THRIFTY_DATA"):
        finetune_task(tiny_run.run_dir, "rte")
    with pytest.raises(UserError, match="tasks with train data in .*: none"):
        finetune_task(tiny_run.run_dir, "rte", data_root=tmp_path)


def test_an_epoch_covers_every_example_and_small_sets_are_stretched():
    from thrifty.eval.finetune.trainer import _epoch_order

    lengths, rng = np.arange(100) % 17, np.random.default_rng(0)
    batches = _epoch_order(lengths, 8, Settings(), rng)
    assert len(batches) == 13 and sorted(np.concatenate(batches).tolist()) == list(range(100))
    assert np.mean([np.ptp(lengths[b]) for b in batches]) < 4  # length-grouped batches
    small = _epoch_order(lengths[:10], 8, Settings(min_steps_per_epoch=10), rng)
    assert len(small) >= 10 and np.bincount(np.concatenate(small)).tolist() == [8] * 10
