"""The key-value recall task: sequences, files, bad settings."""

from __future__ import annotations

import random

import pytest

from thrifty.cli.main import main
from thrifty.data.recall import (
    FILLER,
    KEYS,
    Vocabulary,
    parse_sequence,
    prepare_recall,
    recall_file,
    sample_sequence,
)
from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError


def test_a_sequence_is_its_length_and_its_queries_answer_from_the_context():
    vocab = Vocabulary(keys=20, values=5, filler=6)
    s = sample_sequence(random.Random(0), 64, pairs=6, queries=4, vocab=vocab)
    assert 1 + len(s.text.split()) == 64  # one token per word, plus <s>
    keys = [w for w in s.context if w in KEYS]
    assert len(keys) == len(set(keys)) == 6 and set(keys) <= set(KEYS[:20])
    assert {w for w in s.context if w in FILLER} <= set(FILLER[:6])
    assert parse_sequence(s.text, "x") == s


def test_prepared_windows_are_whole_sequences_and_tests_sit_beside(tmp_path):
    out = tmp_path / "recall"
    m = prepare_recall(out, train_len=32, test_lens=(32, 64), examples=300, test_examples=3,
                       pairs=4, queries=2, vocab=Vocabulary(8, 4, 4))  # fmt: skip
    store = TokenStore(out, "train")
    assert m["tokens"]["train"] == 32 * m["documents"]["train"]  # every word is one token
    assert all(store.window(i, 32)[0] == 1 for i in range(store.num_windows(32)))  # <s> first
    lines = recall_file(out, 64).read_text().splitlines()
    assert len(lines) == 3 and all(1 + len(line.split()) == 64 for line in lines)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--train-len", "8"], "length 8: too short"),
        (["--pairs", "2", "--queries", "3"], "queries <= pairs"),
        (["--keys", "700"], "keys=700"),
    ],
)
def test_bad_settings_name_the_value_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "recall"
    assert main(["recall-task", "--out", str(out), "--examples", "10", *args]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_line_that_is_no_recall_sequence_names_its_place():
    with pytest.raises(UserError, match="f.txt:3: query ab 11"):
        parse_sequence("ab 12 bab | ab 11", "f.txt:3")
