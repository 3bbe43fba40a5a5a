"""Logit-averaged ensembles: K=1 is the single model, K=2 of one member is that member, the
low-memory path gives the same numbers, and members with different tokenizers are refused."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from thrifty.analysis.ensemble import Ensemble, EnsembleModel, ensemble_blimp, ensemble_loss
from thrifty.cli.main import main
from thrifty.data.tokenizer import train_tokenizer
from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError
from thrifty.eval.minimal_pairs import evaluate_minimal_pairs
from thrifty.eval.scoring import score_sentences

SEQ = 32


@pytest.fixture(scope="module")
def family(toy, tmp_path_factory):
    """Two nano runs (seeds 0 and 1) with one tokenizer, data prepared with that tokenizer, a
    third run with another tokenizer, and a two-paradigm minimal-pair folder."""
    from thrifty.data.prepare import prepare

    root = tmp_path_factory.mktemp("ensemble")
    a = toy.build_run(root / "a", seed=0)
    b = toy.build_run(root / "b", seed=1)
    other = root / "other"
    shutil.copytree(b.run_dir, other)
    train_tokenizer(toy.texts(seed=7)[:40], vocab_size=300).save(str(other / "tokenizer.json"))
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "toy.train").write_text("\n".join(toy.texts(400, seed=3)) + "\n")
    data = root / "data"
    prepare(
        [str(corpus)],
        data,
        budget_words=None,
        tokenizer_path=a.run_dir / "tokenizer.json",
        tokenizer_words=sum(len(t.split()) for t in toy.texts()),  # what build_run trained on
        valid_fraction=0.2,
        progress=False,
    )
    blimp = root / "blimp"
    blimp.mkdir()
    for uid, (good, bad) in {
        "p1": ("the cat sat on the mat", "the cat sat mat the on"),
        "p2": ("the dog ran in the park", "dog the in ran park the"),
    }.items():
        rows = [{"sentence_good": good, "sentence_bad": bad, "UID": uid}] * 3
        (blimp / f"{uid}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return a, b, other, data, blimp


def reference_loss(model, data, n_windows=None):
    store = TokenStore(data, "valid")
    n = n_windows or store.num_windows(SEQ)
    ids = store.windows(range(n), SEQ)
    with torch.no_grad():
        logits = model.logits(model(ids[:, :-1]))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).item()


def test_one_member_equals_the_single_model(family):
    a, _, _, data, blimp = family
    ens = Ensemble([a.run_dir])
    result = ensemble_loss(ens, data, seq_len=SEQ, batch_size=4)
    assert result["loss"] == pytest.approx(reference_loss(a.model, data), rel=1e-6)
    assert result["windows"] == TokenStore(data, "valid").num_windows(SEQ)
    sentences = ["the cat sat on the mat", "dog the in ran park the", "a big red dog"]
    single = score_sentences(a.model, a.tokenizer, sentences, "causal")
    # Same numbers up to float rounding: the single model shares prefix computations in a tree,
    # the ensemble wrapper is scored as plain batches.
    ensemble = score_sentences(EnsembleModel([a.model]), a.tokenizer, sentences, "causal")
    assert ensemble == pytest.approx(single, abs=1e-4)
    alone = evaluate_minimal_pairs(a.model, a.tokenizer, blimp, backend="causal")
    assert ensemble_blimp(ens, blimp)["paradigms"] == alone["paradigms"]


def test_two_copies_of_one_member_equal_that_member(family):
    a, _, _, data, blimp = family
    twice = Ensemble([a.run_dir, a.run_dir])
    once = Ensemble([a.run_dir])
    loss2 = ensemble_loss(twice, data, seq_len=SEQ)["loss"]
    assert loss2 == pytest.approx(ensemble_loss(once, data, seq_len=SEQ)["loss"], rel=1e-6)
    assert ensemble_blimp(twice, blimp)["paradigms"] == ensemble_blimp(once, blimp)["paradigms"]


def test_averages_logits_not_probabilities(family):
    a, b, _, data, _ = family
    ens = Ensemble([a.run_dir, b.run_dir])
    store = TokenStore(data, "valid")
    ids = store.windows(range(store.num_windows(SEQ)), SEQ)
    with torch.no_grad():
        za, zb = (m.logits(m(ids[:, :-1])) for m in (a.model, b.model))
    expected = F.cross_entropy(((za + zb) / 2).flatten(0, 1), ids[:, 1:].flatten()).item()
    logits = ensemble_loss(ens, data, seq_len=SEQ)["loss"]
    probs = ensemble_loss(ens, data, seq_len=SEQ, average="probs")["loss"]
    assert logits == pytest.approx(expected, rel=1e-5)
    assert abs(logits - probs) > 1e-4  # the two averages differ for different members
    single = Ensemble([a.run_dir])
    same = [
        ensemble_loss(single, data, seq_len=SEQ, average=m)["loss"] for m in ("logits", "probs")
    ]
    assert same[0] == pytest.approx(same[1], rel=1e-6)


def test_low_memory_gives_the_same_numbers(family, tmp_path):
    a, b, _, data, blimp = family
    runs = [a.run_dir, b.run_dir]
    full, lean = Ensemble(runs), Ensemble(runs, low_memory=True, cache_dir=tmp_path)
    assert lean._loaded is None  # members are not kept between passes
    assert ensemble_loss(lean, data, seq_len=SEQ)["loss"] == pytest.approx(
        ensemble_loss(full, data, seq_len=SEQ)["loss"], rel=1e-12
    )
    assert ensemble_blimp(lean, blimp) | {"seconds": 0, "sentences_per_s": 0} == ensemble_blimp(
        full, blimp
    ) | {"seconds": 0, "sentences_per_s": 0}
    assert list(tmp_path.iterdir()) == []  # hidden states are cleaned up


def test_members_with_different_tokenizers_are_refused(family):
    a, _, other, data, _ = family
    with pytest.raises(UserError, match="one tokenizer"):
        Ensemble([a.run_dir, other])
    with pytest.raises(UserError, match="tokenized with tokenizer"):
        ensemble_loss(Ensemble([other]), data, seq_len=SEQ)


def test_cli_writes_a_result_for_scaling(family, tmp_path, capsys):
    a, b, _, data, blimp = family
    out = tmp_path / "k2.json"
    argv = ["ensemble", str(a.run_dir), str(b.run_dir), "--data", str(data), "--seq-len", "32"]
    assert main([*argv, "--blimp", str(blimp), "--low-memory", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["k"] == 2 and result["val_loss"] > 0 and 0 <= result["blimp_causal"] <= 1
    assert "K=2 ensemble" in capsys.readouterr().out
