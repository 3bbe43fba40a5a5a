"""prepare(): exact budgets, deterministic selection, atomic output, consistent files, CLI."""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest

from thrifty.cli import audit
from thrifty.cli import prepare as prepare_cli
from thrifty.cli.numbers import parse_count
from thrifty.data import prepare as prepare_mod
from thrifty.data.prepare import load_manifest, prepare
from thrifty.data.tokenizer import BOS_ID, load_tokenizer
from thrifty.errors import UserError

VOCAB = ["the", "dog", "ran", "far", "away", "from", "home", "today", "we", "saw", "it", "blue"]


def write_corpus(folder: Path) -> Path:
    """Three sources of different sizes: short lines, one long line, a gzip-free .dev file."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)

    def line(n: int) -> str:
        return " ".join(rng.choice(VOCAB) for _ in range(n))

    (folder / "a.train").write_text("\n".join(line(rng.randint(3, 15)) for _ in range(300)))
    (folder / "b.train").write_text(line(3000) + "\n")
    (folder / "c.dev").write_text("\n".join(line(rng.randint(1, 40)) for _ in range(60)))
    return folder


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


def run(sources: list[Path], out: Path, **kwargs: object) -> dict:
    settings: dict = {"budget_words": 4000, "vocab_size": 300, "max_doc_words": 100}
    settings |= {"progress": False, **kwargs}
    return prepare([str(s) for s in sources], out, **settings)


def read_split(out: Path, split: str, manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    bin_name, idx_name = manifest["files"][split]
    tokens = np.fromfile(out / bin_name, dtype=manifest["dtype"])
    return tokens, np.fromfile(out / idx_name, dtype="<i8")


def test_prefix_takes_exactly_n_words_in_source_order(corpus_dir: Path, tmp_path: Path) -> None:
    manifest = run([corpus_dir], tmp_path / "out", selection="prefix", budget_words=2222)
    ledger = manifest["ledger"]
    assert manifest["words"]["train"] + manifest["words"]["valid"] == 2222
    assert [s["words_used"] for s in ledger["sources"]][1:] == [0, 0]  # a.train alone suffices
    assert ledger["selection"] == "prefix" and ledger["budget_words"] == 2222


def test_sample_is_exact_proportional_and_deterministic(corpus_dir: Path, tmp_path: Path) -> None:
    first = run([corpus_dir], tmp_path / "one", seed=5)
    again = run([corpus_dir], tmp_path / "two", seed=5)
    other = run([corpus_dir], tmp_path / "three", seed=6)
    sources = first["ledger"]["sources"]
    total = sum(s["words_total"] for s in sources)
    assert sum(s["words_used"] for s in sources) == 4000
    for s in sources:
        assert abs(s["words_used"] - 4000 * s["words_total"] / total) <= 1
    train = {name: (tmp_path / name / "train.bin").read_bytes() for name in ("one", "two", "three")}
    assert train["one"] == train["two"] and train["one"] != train["three"]
    assert first["ledger"]["tokenizer"]["sha256"] == again["ledger"]["tokenizer"]["sha256"]
    assert first["ledger"] == again["ledger"]
    assert other["ledger"]["seed"] == 6 and other["truncated"] != first["truncated"]


def test_budget_larger_than_corpus(corpus_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"budget of 10,000,000 words is larger than the corpus"):
        run([corpus_dir], tmp_path / "out", budget_words=10_000_000)
    assert not (tmp_path / "out").exists()


def test_manifest_matches_files_and_documents_start_with_bos(
    corpus_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    manifest = run([corpus_dir], out, valid_fraction=0.05)
    assert manifest == load_manifest(out)
    tok = load_tokenizer(out / "tokenizer.json")
    assert manifest["ledger"]["tokenizer"]["trained_on_words"] == manifest["words"]["train"]
    for split in ("train", "valid"):
        tokens, offsets = read_split(out, split, manifest)
        assert len(tokens) == manifest["tokens"][split] == offsets[-1]
        assert len(offsets) - 1 == manifest["documents"][split] > 0
        assert offsets[0] == 0 and (np.diff(offsets) > 1).all()
        assert (tokens[offsets[:-1]] == BOS_ID).all()
        assert (tokens == BOS_ID).sum() == manifest["documents"][split]  # BOS only at starts
        words = sum(
            len(tok.decode(tokens[a + 1 : b].tolist()).split())
            for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        )
        assert words == manifest["words"][split]
    assert 0.03 < manifest["words"]["valid"] / 4000 < 0.08


def test_all_words_without_a_budget(corpus_dir: Path, tmp_path: Path) -> None:
    manifest = run([corpus_dir / "c.dev"], tmp_path / "out", budget_words=None)
    source = manifest["ledger"]["sources"][0]
    assert source["words_used"] == source["words_total"] == sum(manifest["words"].values())
    assert manifest["ledger"]["selection"] == "all" and manifest["truncated"] == []


@pytest.mark.parametrize("stage", ["train_tokenizer", "TokenWriter.add"])
def test_failure_leaves_no_output_and_no_temp_folder(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected failure")

    if stage == "train_tokenizer":
        monkeypatch.setattr(prepare_mod, "train_tokenizer", boom)
    else:
        monkeypatch.setattr(prepare_mod.TokenWriter, "add", boom)
    out = tmp_path / "runs" / "out"
    with pytest.raises(RuntimeError, match="injected"):
        run([corpus_dir], out)
    assert not out.exists()
    assert list((tmp_path / "runs").iterdir()) == []


def test_existing_output_needs_overwrite(corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run([corpus_dir], out, seed=1)
    with pytest.raises(UserError, match="already here; pass --overwrite"):
        run([corpus_dir], out, seed=2)
    assert load_manifest(out) == first
    second = run([corpus_dir], out, seed=2, overwrite=True)
    assert load_manifest(out) == second != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "out"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty and not a prepared dataset"):
        run([corpus_dir], tmp_path / "mine", overwrite=True)


def test_reused_tokenizer_is_recorded(corpus_dir: Path, tmp_path: Path) -> None:
    base = run([corpus_dir], tmp_path / "base")
    reused = run(
        [corpus_dir / "c.dev"], tmp_path / "re", budget_words=1000, tokenizer_path=tmp_path / "base"
    )
    assert reused["ledger"]["tokenizer"]["sha256"] == base["ledger"]["tokenizer"]["sha256"]
    assert reused["ledger"]["tokenizer"]["trained_on_words"] == base["words"]["train"]
    assert reused["ledger"]["tokenizer"]["path"] == str(tmp_path / "base")


def test_replaced_bytes_warn_once_per_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 au lait\nfine words here\n\xff again\n")
    with pytest.raises(UserError, match=r"bad\.txt:1: undecodable byte"):
        run([tmp_path / "bad.txt"], tmp_path / "out", budget_words=None)
    with caplog.at_level(logging.WARNING, logger="thrifty.data.corpus"):
        manifest = run(
            [tmp_path / "bad.txt"], tmp_path / "out", budget_words=None, errors="replace"
        )
    assert sum(manifest["words"].values()) == 8
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_empty_corpus_and_bad_settings(tmp_path: Path) -> None:
    (tmp_path / "blank.txt").write_text("\n   \n\n")
    with pytest.raises(UserError, match="blank.txt: no words"):
        run([tmp_path / "blank.txt"], tmp_path / "out")
    with pytest.raises(UserError, match="vocab_size must be at least 262"):
        run([tmp_path / "blank.txt"], tmp_path / "out", vocab_size=100)
    with pytest.raises(UserError, match="selection must be"):
        run([tmp_path / "blank.txt"], tmp_path / "out", selection="random")


def test_load_manifest_rejects_other_folders(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a prepared dataset"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other/2"}))
    with pytest.raises(UserError, match="format 'other/2' is not 'thrifty-data/1'"):
        load_manifest(tmp_path)


def test_parse_count() -> None:
    assert parse_count("1M") == 1_000_000
    assert parse_count("250k") == 250_000
    assert parse_count("10_000_000") == 10_000_000
    assert parse_count("1.5B") == 1_500_000_000
    assert parse_count("2e6") == 2_000_000
    assert parse_count("1,000") == 1000
    for garbage in ("ten", "1.5", "-3", "1MM", ""):
        with pytest.raises(UserError):
            parse_count(garbage)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    prepare_cli.add_parser(sub)
    audit.add_parser(sub)
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_prepare_then_audit(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli("prepare", str(corpus_dir), "--out", str(out), "--budget-words", "3k",
               "--vocab-size", "300", "--max-doc-words", "100", "--quiet") == 0  # fmt: skip
    assert capsys.readouterr().out == ""
    assert sum(load_manifest(out)["words"].values()) == 3000
    assert cli("audit", str(out)) == 0
    assert "3,000 words" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli("prepare", str(corpus_dir), "--out", str(out), "--budget-words", "lots")
    assert "not a count" in capsys.readouterr().err


@pytest.mark.slow
def test_real_babylm_sample(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "babylm_200k"
    manifest = prepare(
        [str(shared_data / "babylm")], out, budget_words=200_000, vocab_size=2048, progress=False
    )
    ledger = manifest["ledger"]
    assert sum(manifest["words"].values()) == 200_000 == ledger["budget_words"]
    assert manifest["vocab_size"] == 2048 and manifest["dtype"] == "uint16"
    # the shared data's own manifest fingerprints each stored file and counts its words
    rows = [json.loads(line) for line in (shared_data / "MANIFEST.jsonl").read_text().splitlines()]
    expected = {(shared_data.parent / r["local_path"]).resolve(): r for r in rows}
    assert len(ledger["sources"]) >= 5
    for source in ledger["sources"]:
        row = expected[Path(source["path"]).resolve()]
        assert source["sha256"] == row["sha256"]
        assert source["words_total"] == row["words"]
    total = sum(s["words_total"] for s in ledger["sources"])
    for source in ledger["sources"]:
        assert abs(source["words_used"] - 200_000 * source["words_total"] / total) <= 1
    tokens, offsets = read_split(out, "train", manifest)
    assert len(tokens) == offsets[-1] == manifest["tokens"]["train"]
    assert (tokens[offsets[:-1]] == BOS_ID).all()
    assert 1.0 < len(tokens) / manifest["words"]["train"] < 3.0  # plausible tokens per word
    assert cli("audit", str(out)) == 0
