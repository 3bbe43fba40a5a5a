"""Minimal-pair accuracy: ties are wrong, macro is over paradigms, subsamples are seeded."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pytest

from thrifty.cli import eval as eval_cmd
from thrifty.errors import UserError
from thrifty.eval.minimal_pairs import (
    evaluate_minimal_pairs,
    evaluate_pairs,
    format_table,
    read_pairs,
)

# Stub scores by sentence. p1: right, tie, wrong, right -> 0.5; p2: 1.0; p3 (gz): 0.0.
SCORES = {"g1": 2, "b1": 1, "g2": 5, "b2": 5, "g3": 0, "b3": 3, "g4": 9, "b4": 0}
SCORES |= {"g5": -1, "b5": -2, "g6": 1, "b6": 0, "g7": -5, "b7": -4}
PARADIGMS = {
    "p1": ("agreement", [("g1", "b1"), ("g2", "b2"), ("g3", "b3"), ("g4", "b4")]),
    "p2": ("agreement", [("g5", "b5"), ("g6", "b6")]),
    "p3": ("island_effects", [("g7", "b7")]),
}


def record(uid: str, term: str, good: str, bad: str, i: int) -> dict:
    return {"sentence_good": good, "sentence_bad": bad, "UID": uid, "linguistics_term": term,
            "field": "syntax", "pair_id": i}  # fmt: skip


def write_jsonl(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)


@pytest.fixture
def blimp3(tmp_path) -> Path:
    folder = tmp_path / "blimp3"
    folder.mkdir()
    for uid, (term, pairs) in PARADIGMS.items():
        rows = [record(uid, term, g, b, i) for i, (g, b) in enumerate(pairs)]
        write_jsonl(folder / (f"{uid}.jsonl.gz" if uid == "p3" else f"{uid}.jsonl"), rows)
    (folder / "README.md").write_text("not data")
    return folder


def stub(sentences: list[str]) -> list[float]:
    stub.calls.append(list(sentences))
    return [float(SCORES[s]) for s in sentences]


def test_accuracy_ties_macro_and_phenomena(blimp3, tmp_path):
    stub.calls = []
    items = tmp_path / "items.jsonl"
    result = evaluate_pairs(read_pairs(blimp3), stub, items_path=items)
    assert len(stub.calls) == 1  # every sentence in one scoring call
    acc = {uid: r["accuracy"] for uid, r in result["paradigms"].items()}
    assert acc == {"p1": 0.5, "p2": 1.0, "p3": 0.0}
    assert result["macro"] == pytest.approx(0.5)  # not the item mean 4/7
    assert result["phenomena"] == {"agreement": 0.75, "island_effects": 0.0}
    assert result["n_pairs"] == 7 and result["n_paradigms"] == 3
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    assert len(rows) == 7 and sum(r["correct"] for r in rows) == 4
    assert rows[1]["score_good"] == rows[1]["score_bad"] and not rows[1]["correct"]
    table = format_table(result)
    assert "p3" in table and "island_effects" in table and "50.0" in table


def test_a_constant_scorer_scores_zero(blimp3):
    result = evaluate_pairs(read_pairs(blimp3), lambda s: [0.0] * len(s))
    assert result["macro"] == 0.0


def test_subsample_is_seeded_and_per_paradigm(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    for uid in ("a", "b"):
        rows = [record(uid, "t", f"{uid}g{i}", f"{uid}b{i}", i) for i in range(50)]
        write_jsonl(folder / f"{uid}.jsonl", rows)
    first = read_pairs(folder, max_pairs_per_paradigm=10, seed=1)
    assert len(first) == 20 and first == read_pairs(folder, max_pairs_per_paradigm=10, seed=1)
    only_b = read_pairs(folder, paradigms=["b"], max_pairs_per_paradigm=10, seed=1)
    assert only_b == [p for p in first if p.paradigm == "b"]  # independent of other paradigms
    assert first != read_pairs(folder, max_pairs_per_paradigm=10, seed=2)
    assert len(read_pairs(folder, max_pairs_per_paradigm=100)) == 100


def test_supplement_style_records_use_the_file_name(tmp_path):
    path = tmp_path / "turn_taking.jsonl"
    write_jsonl(path, [{"sentence_good": "A: hi\nB: hi", "sentence_bad": "A: hi\nB: no"}])
    [pair] = read_pairs(path)
    assert pair.paradigm == "turn_taking" and pair.phenomenon == "turn_taking"


def test_bad_input_names_the_file_and_line(tmp_path, blimp3):
    with pytest.raises(UserError, match="not found"):
        read_pairs(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no \\*.jsonl"):
        read_pairs(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jsonl").write_text(json.dumps(record("x", "t", "g", "b", 0)) + '\n{"UID": "x"}\n')
    with pytest.raises(UserError, match=r"x\.jsonl:2: .*sentence_good"):
        read_pairs(bad)
    (bad / "x.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match=r"x\.jsonl:1: not valid JSON"):
        read_pairs(bad)
    with pytest.raises(UserError, match="did you mean 'p1'"):
        read_pairs(blimp3, paradigms=["p11"])


def test_with_a_model_and_the_eval_command(tiny_run, blimp3, tmp_path, capsys):
    for backend in ("causal", "mlm", "mntp"):
        result = evaluate_minimal_pairs(
            tiny_run.model, tiny_run.tokenizer, blimp3, backend=backend, paradigms=["p1", "p3"]
        )
        assert result["backend"] == backend and result["n_paradigms"] == 2
        assert 0.0 <= result["macro"] <= 1.0
    parser = argparse.ArgumentParser()
    eval_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", str(tiny_run.run_dir), "--data", str(blimp3)])
    assert args.func(args) == 0
    saved = json.loads((tiny_run.run_dir / "eval" / "blimp_causal.json").read_text())
    assert saved["ledger"]["budget_words"] == 1000 and saved["step"] == 1
    assert saved["backend"] == "causal" and set(saved["paradigms"]) == {"p1", "p2", "p3"}
    assert "macro" in capsys.readouterr().out
    out = tmp_path / "r.json"
    items = tmp_path / "i.jsonl"
    argv = ["eval", str(tiny_run.run_dir), "--data", str(blimp3), "--backend", "mlm",
            "--variant", "within_word_l2r", "--out", str(out), "--items", str(items)]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert json.loads(out.read_text())["variant"] == "within_word_l2r"
    assert len(items.read_text().splitlines()) == 7


@pytest.mark.slow
def test_real_blimp_paradigms_with_every_backend(tiny_run, blimp_dir):
    names = ["anaphor_number_agreement", "determiner_noun_agreement_1"]
    for backend in ("causal", "mlm", "mntp"):
        result = evaluate_minimal_pairs(
            tiny_run.model,
            tiny_run.tokenizer,
            blimp_dir,
            backend=backend,
            paradigms=names,
            max_pairs_per_paradigm=40,
        )
        assert result["n_pairs"] == 80 and set(result["paradigms"]) == set(names)
        assert 0.0 <= result["macro"] <= 1.0
        assert set(result["phenomena"]) == {"anaphor_agreement", "determiner_noun_agreement"}
