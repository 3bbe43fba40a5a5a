"""The ledger's rules beyond the words seen: a tokenizer's training words are charged unless
provably already charged; every pass over a word counts toward the epoch rule; ledgers written
before these fields existed still load."""

from __future__ import annotations

import json

import pytest

from thrifty.cli.main import main
from thrifty.data.budget import Ledger

A, B, C = "aa" * 32, "bb" * 32, "cc" * 32  # source file sha256s
TRAIN_TEXT, OTHER_TEXT = "11" * 32, "22" * 32  # text sha256s


def ledger(**changes: object) -> Ledger:
    base = Ledger(
        budget_words=2000,
        sources=[{"path": "a.txt", "sha256": A, "words_total": 5000, "words_used": 1000}],
        prepared_words={"train": 990, "valid": 10},
        tokenizer={"trained_on_words": 990, "sha256": "cd" * 32, "vocab_size": 300},
        texts=[TRAIN_TEXT],
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def reused(text: str = OTHER_TEXT, words: int = 700, **extra: object) -> dict:
    files = [{"path": "other.txt", "sha256": C, "words": words}]
    record = {"trained_on_words": words, "sha256": "ef" * 32, "vocab_size": 300, "path": "tok/"}
    return record | {"sources": files, "text_sha256": text} | extra


# ---- the tokenizer's training words


def test_a_tokenizer_trained_on_other_words_is_charged_in_full(capsys):
    book = ledger(tokenizer=reused())
    assert book.tokenizer_words() == 700
    assert book.charged_words() == 1000 + 700
    text = "\n".join(book.summary_lines())
    assert "from tok/: trained on 700 words (1 file(s))" in text
    assert f"other.txt: 700 words, sha256 {C[:12]}" in text and "charged: 700 words" in text
    book.budget_words = 1500
    (problem,) = book.violations()
    assert "charged words 1,700 exceed the budget of 1,500" in problem


def test_a_tokenizer_trained_on_words_already_charged_adds_nothing():
    assert ledger(tokenizer=reused(text=TRAIN_TEXT)).tokenizer_words() == 0  # the same split
    book = ledger(tokenizer=reused())
    book.charge_aux_model("prior", 5000, texts=[OTHER_TEXT])  # an aux model read that text
    assert book.tokenizer_words() == 0 and book.charged_words() == 1000 + 5000
    assert "not charged: it read text already charged here" in "\n".join(book.summary_lines())
    assert OTHER_TEXT in book.known_texts() and TRAIN_TEXT in book.known_texts()


def test_a_stated_tokenizer_is_charged_and_shown_as_stated():
    book = ledger(tokenizer=reused(text="", stated=True, sources=[]))
    assert book.tokenizer_words() == 700
    assert "trained on 700 words (stated by the user)" in "\n".join(book.summary_lines())


# ---- exposure: passes over the same words add up


def test_passes_add_up_over_sets_that_share_files(tmp_path, capsys):
    book = ledger(words_seen=990 * 6.0)  # the model's own 6 passes over a.txt
    book.exposure = [
        {"name": "start model x: training data", "words": 990, "passes": 5.0, "sources": [A]},
        {"name": "replay set", "words": 100, "passes": 30.0, "sources": [B]},
    ]
    passes, names = book.max_passes()
    assert passes == 30.0 and names == ["replay set"]  # b.txt alone: 30 passes
    problems = book.violations()
    assert any(p.startswith("30.000 epochs exceed the maximum of 10") for p in problems)
    book.exposure[1]["passes"] = 3.0
    passes, names = book.max_passes()
    assert passes == pytest.approx(11.0) and names == [
        "training data",
        "start model x: training data",
    ]
    (problem,) = book.violations()
    assert (
        "11.000 epochs exceed the maximum of 10 (passes over the same words: training data"
        in problem
    )
    book.save(tmp_path)
    assert main(["audit", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "exposure replay set: 100 words x 3.00 passes" in out
    assert "most passes over any word: 11.00 (training data + start model x" in out


def test_sets_of_unknown_files_share_with_everything():
    book = ledger(words_seen=990 * 6.0)
    book.exposure = [{"name": "teacher", "words": 50, "passes": 5.0, "sources": []}]
    assert book.max_passes()[0] == pytest.approx(11.0)
    book.exposure[0]["sources"] = [B]
    assert book.max_passes()[0] == pytest.approx(6.0)


def test_passed_on_prefixes_every_set_with_passes():
    book = ledger(words_seen=990 * 2.0)
    book.exposure = [{"name": "replay set", "words": 9, "passes": 4.0, "sources": [B]}]
    carried = book.passed_on("start model s")
    assert [e["name"] for e in carried] == [
        "start model s: training data",
        "start model s: replay set",
    ]
    assert carried[0]["passes"] == pytest.approx(2.0) and carried[0]["sources"] == [A]
    assert ledger().passed_on("unused") == []  # nothing seen, nothing passed on


# ---- ledgers from before these fields


def test_old_ledgers_load_and_keep_their_meaning():
    old = {
        "budget_words": 1000,
        "selection": "sample",
        "seed": 0,
        "sources": [{"path": "a.txt", "sha256": A, "words_total": 5000, "words_used": 1000}],
        "prepared_words": {"train": 990, "valid": 10},
        "tokenizer": {"trained_on_words": 990, "sha256": "cd" * 32, "vocab_size": 300},
        "aux_models": [],
        "synthetic_words": 0,
        "overlap_words": 0,
        "details": {},
        "words_seen": 9900.0,
        "max_epochs": 10,
    }
    book = Ledger.from_dict(json.loads(json.dumps(old)))
    assert book.texts == [] and book.exposure == []
    assert book.charged_words() == 1000 and book.violations() == []  # trained here: no charge
    # an old record of a reused tokenizer could not prove which words it read: charged
    old["tokenizer"] |= {"path": "elsewhere/tokenizer.json", "trained_on_words": 500}
    assert Ledger.from_dict(old).charged_words() == 1500


def test_derived_words_are_seen_but_not_charged():
    ledger = Ledger(budget_words=1000, prepared_words={"train": 900, "valid": 50})
    ledger.derived_words["obfuscation"] = 400  # twins of 400 of the 900 training words
    assert ledger.charged_words() == 550
    assert not ledger.violations()
    assert any(line.startswith("derived: 400 training words made by obfuscation")
               for line in ledger.summary_lines())  # fmt: skip


def test_a_noncompliant_auxiliary_model_fails_the_audit():
    ledger = Ledger(budget_words=10**9, prepared_words={"train": 100, "valid": 0})
    ledger.charge_aux_model("generator gpt2", 10**6, noncompliant="training words declared")
    assert ledger.violations() == ["auxiliary model generator gpt2: training words declared"]
    assert "not BabyLM-compliant" in "\n".join(ledger.summary_lines())
    assert Ledger.from_dict(ledger.to_dict()).violations() == ledger.violations()
