"""The ledger (charging, rules, persistence, audit) and the rules that spend a word budget."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from thrifty.cli import audit
from thrifty.data.budget import (
    Ledger,
    proportional_shares,
    select_prefix,
    select_sample,
    split_valid,
)
from thrifty.errors import UserError


def make_ledger(**changes: object) -> Ledger:
    ledger = Ledger(
        budget_words=1000,
        selection="sample",
        seed=3,
        sources=[{"path": "a.txt", "sha256": "ab" * 32, "words_total": 5000, "words_used": 1000}],
        prepared_words={"train": 990, "valid": 10},
        tokenizer={"trained_on_words": 990, "sha256": "cd" * 32, "vocab_size": 300},
    )
    for key, value in changes.items():
        setattr(ledger, key, value)
    return ledger


def random_docs(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 60, size=n) for n in (40, 120, 7)]


def test_round_trip_and_atomic_save(tmp_path: Path) -> None:
    ledger = make_ledger()
    ledger.charge_tokens(500, 0.75)
    ledger.charge_aux_model("teacher", 100)
    assert Ledger.from_dict(json.loads(json.dumps(ledger.to_dict()))) == ledger
    written = ledger.save(tmp_path)
    assert written == tmp_path / "ledger.json"
    assert Ledger.load(tmp_path) == ledger
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]  # no temp file left
    with pytest.raises(UserError, match="unknown key 'budget'"):
        Ledger.from_dict({"budget": 3})
    (tmp_path / "broken.json").write_text("{\n  nope")
    with pytest.raises(UserError, match=r"broken\.json:2: not valid JSON"):
        Ledger.load(tmp_path / "broken.json")


def test_charging_and_epochs() -> None:
    ledger = make_ledger()
    ledger.charge_tokens(1000, 0.5)
    ledger.charge_tokens(980, 0.5)
    assert ledger.words_seen == pytest.approx(990)
    assert ledger.epochs == pytest.approx(1.0)
    ledger.charge_aux_model("teacher", 0)
    assert ledger.charged_words() == 1000  # the tokenizer adds nothing new
    assert ledger.violations() == []


def test_violation_when_budget_exceeded() -> None:
    ledger = make_ledger()
    ledger.charge_aux_model("color_filter_prior", 5)
    (problem,) = ledger.violations()
    assert "1,005" in problem and "budget of 1,000" in problem


def test_violation_beyond_ten_epochs_but_not_at_ten() -> None:
    ledger = make_ledger()
    for _ in range(100):  # float accumulation lands a hair above or below 10
        ledger.charge_tokens(33, 3.0)
    assert ledger.epochs == pytest.approx(10.0)
    assert ledger.violations() == []
    ledger.charge_tokens(10, 1.0)
    (problem,) = ledger.violations()
    assert "epochs exceed the maximum of 10" in problem


def test_summary_lines_state_the_numbers() -> None:
    ledger = make_ledger(words_seen=1980.0)
    text = "\n".join(ledger.summary_lines())
    for fact in ("1,000 words", "990 train", "10 valid", "a.txt", "2.00 epochs", "vocab 300"):
        assert fact in text


def run_audit(path: Path) -> int:
    parser = argparse.ArgumentParser()
    audit.add_parser(parser.add_subparsers())
    args = parser.parse_args(["audit", str(path)])
    return args.func(args)


def test_audit_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    make_ledger(words_seen=5000.0).save(good)
    make_ledger(words_seen=50_000.0).save(bad)
    assert run_audit(good) == 0
    assert run_audit(bad) == 1
    assert "VIOLATION" in capsys.readouterr().out
    with pytest.raises(UserError, match="neither a run folder"):
        run_audit(tmp_path)


def test_prefix_takes_exactly_the_budget_in_order() -> None:
    words = random_docs()
    total = sum(int(w.sum()) for w in words)
    for budget in (1, 37, int(words[0].sum()), total // 2, total):
        take = select_prefix(words, budget)
        flat, full = np.concatenate(take), np.concatenate(words)
        assert flat.sum() == budget
        used = np.flatnonzero(flat)
        assert used.tolist() == list(range(len(used)))  # a prefix of the documents
        assert (flat[used[:-1]] == full[used[:-1]]).all()  # only the last one is cut


def test_sample_is_exact_proportional_and_seeded() -> None:
    words = random_docs()
    totals = [int(w.sum()) for w in words]
    budget = sum(totals) // 3
    take = select_sample(words, budget, seed=0)
    used = [int(t.sum()) for t in take]
    assert sum(used) == budget
    for u, w in zip(used, totals, strict=True):
        assert abs(u - budget * w / sum(totals)) <= 1
    for t, w in zip(take, words, strict=True):
        assert ((t > 0) & (t < w)).sum() <= 1  # whole documents but one per source
    again = select_sample(words, budget, seed=0)
    assert all((a == b).all() for a, b in zip(take, again, strict=True))
    other = select_sample(words, budget, seed=1)
    assert any((a != b).any() for a, b in zip(take, other, strict=True))


def test_shares_always_sum_to_the_budget() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        totals = rng.integers(0, 1000, size=rng.integers(1, 8)).tolist()
        if sum(totals) == 0:
            continue
        budget = int(rng.integers(1, sum(totals) + 1))
        shares = proportional_shares(budget, totals)
        assert sum(shares) == budget
        assert all(0 <= s <= t for s, t in zip(shares, totals, strict=True))


def test_budget_larger_than_corpus_names_both_numbers() -> None:
    words = [np.array([10, 20]), np.array([5])]
    for select in (select_prefix, lambda w, b: select_sample(w, b, 0)):
        with pytest.raises(UserError, match=r"budget of 36 words .* corpus \(35 words"):
            select(words, 36)


def test_valid_split_takes_about_the_fraction() -> None:
    take = [np.full(200, 10), np.full(100, 10)]
    valid = split_valid(take, 0.05, seed=0)
    valid_words = sum(int(t[v].sum()) for t, v in zip(take, valid, strict=True))
    assert 150 <= valid_words <= 160
    assert split_valid([np.array([3, 4])], 0.001, 0)[0].sum() == 1  # at least one document
    assert split_valid([np.array([3, 4])], 0.9, 0)[0].sum() == 1  # and one left to train
    assert split_valid([np.array([3])], 0.5, 0)[0].sum() == 0
    assert split_valid(take, 0.0, 0)[0].sum() == 0
