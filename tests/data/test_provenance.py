"""A reused tokenizer brings its training words (and their files) into the new ledger; one with
no record of them is refused unless the user states them; the same words are not charged twice."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from thrifty.cli.main import main
from thrifty.data.budget import Ledger
from thrifty.data.prepare import load_manifest, prepare
from thrifty.data.provenance import text_sha256
from thrifty.errors import UserError

WORDS = "the dog ran far away from home today we saw it blue".split()


def write(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choices(WORDS, k=rng.randint(3, 15))) for _ in range(n)))
    return path


def make(sources: list[Path], out: Path, **kwargs: object) -> Ledger:
    settings = {"budget_words": None, "vocab_size": 300, "progress": False} | kwargs
    manifest = prepare([str(s) for s in sources], out, **settings)
    return Ledger.from_dict(manifest["ledger"])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A prepared dataset ``base`` (trains its tokenizer) and a second text file."""
    write(tmp_path / "a.txt", 300, 0)
    write(tmp_path / "b.txt", 200, 1)
    make([tmp_path / "a.txt"], tmp_path / "base", valid_fraction=0.1)
    return tmp_path


def test_a_trained_tokenizer_records_its_words_files_and_text(home):
    base = load_manifest(home / "base")["ledger"]
    tok = base["tokenizer"]
    assert tok["trained_on_words"] == base["prepared_words"]["train"]
    (source,) = tok["sources"]
    assert (
        source["sha256"] == base["sources"][0]["sha256"]
        and source["words"] == tok["trained_on_words"]
    )
    assert tok["text_sha256"] == base["texts"][0] != ""


def test_the_validation_text_is_on_record_apart_from_the_training_text(home):
    base = Ledger.from_dict(load_manifest(home / "base")["ledger"])
    (valid,) = base.valid_texts
    assert valid not in ("", *base.texts) and valid in base.known_texts()
    again = make([home / "a.txt"], home / "again", valid_fraction=0.1)
    other = make([home / "a.txt"], home / "other", valid_fraction=0.1, seed=1)
    assert again.valid_texts == base.valid_texts != other.valid_texts
    # no validation split, no record of one (and ledgers without it read as before)
    whole = make([home / "a.txt"], home / "whole", valid_fraction=0.0)
    assert whole.valid_texts == [] and "valid_texts" not in whole.to_dict()


def test_a_tokenizer_from_another_dataset_is_charged_with_its_sources(home, capsys):
    base = Ledger.from_dict(load_manifest(home / "base")["ledger"])
    new = make([home / "b.txt"], home / "new", budget_words=1000, tokenizer_path=home / "base")
    assert new.tokenizer["path"] == str(home / "base")
    assert new.tokenizer["sources"] == base.tokenizer["sources"]
    assert new.tokenizer_words() == base.train_words > 0
    assert new.charged_words() == 1000 + base.train_words
    assert main(["audit", str(home / "new")]) == 1  # 1,000 selected + the tokenizer's words
    out = capsys.readouterr().out
    assert f"from {home / 'base'}: trained on {base.train_words:,} words (1 file(s))" in out
    assert f"a.txt: {base.train_words:,} words, sha256 {base.sources[0]['sha256'][:12]}" in out
    assert "exceed the budget of 1,000 words" in out


def test_the_same_words_are_not_charged_twice(home):
    """The same file, selection and split as ``base``: provably the text its tokenizer read."""
    again = make([home / "a.txt"], home / "again", valid_fraction=0.1, tokenizer_path=home / "base")
    assert again.texts == Ledger.from_dict(load_manifest(home / "base")["ledger"]).texts
    assert again.tokenizer["path"] and again.tokenizer_words() == 0
    assert again.charged_words() == sum(again.prepared_words.values())
    # another split of the same file is other words, as far as anyone can prove: charged
    other = make([home / "a.txt"], home / "other", valid_fraction=0.3, tokenizer_path=home / "base")
    assert other.tokenizer_words() == other.tokenizer["trained_on_words"] > 0


def test_a_tokenizer_from_a_run_folder_brings_the_runs_record(home):
    run = home / "run"
    run.mkdir()
    shutil.copyfile(home / "base" / "tokenizer.json", run / "tokenizer.json")
    (run / "ledger.json").write_text(json.dumps(load_manifest(home / "base")["ledger"]))
    new = make([home / "b.txt"], home / "new", tokenizer_path=run / "tokenizer.json")
    assert new.tokenizer_words() == load_manifest(home / "base")["words"]["train"]


def test_a_tokenizer_without_a_record_needs_its_words_stated(home, capsys):
    bare = home / "bare"
    bare.mkdir()
    shutil.copyfile(home / "base" / "tokenizer.json", bare / "tokenizer.json")
    argv = ["prepare", str(home / "b.txt"), "--out", str(home / "new"), "--vocab-size", "300"]
    argv += ["--tokenizer", str(bare / "tokenizer.json"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nothing records the words this tokenizer was trained on" in err
    assert "--tokenizer-words N" in err and len(err.strip().splitlines()) == 1
    assert not (home / "new").exists()
    assert main([*argv, "--tokenizer-words", "50k"]) == 0
    new = Ledger.from_dict(load_manifest(home / "new")["ledger"])
    assert new.tokenizer["stated"] and new.tokenizer_words() == 50_000
    capsys.readouterr()
    assert main(["audit", str(home / "new")]) == 0  # no budget given: nothing to exceed
    assert "trained on 50,000 words (stated by the user)" in capsys.readouterr().out


def test_a_record_of_another_tokenizer_or_a_needless_statement_is_refused(home):
    with pytest.raises(UserError, match="records the words this tokenizer was trained on"):
        make([home / "b.txt"], home / "new", tokenizer_path=home / "base", tokenizer_words=5)
    with pytest.raises(UserError, match="--tokenizer-words is for a reused tokenizer"):
        make([home / "b.txt"], home / "new", tokenizer_words=5)
    # a dataset whose manifest describes another tokenizer than the file beside it
    make([home / "b.txt"], home / "b")
    shutil.copyfile(home / "base" / "tokenizer.json", home / "b" / "tokenizer.json")
    with pytest.raises(UserError, match="nothing records"):
        make([home / "a.txt"], home / "new", tokenizer_path=home / "b")


def test_text_sha256_is_of_the_documents_in_order():
    assert text_sha256(["a b", "c"]) == text_sha256(["a b", "c"]) != text_sha256(["c", "a b"])
