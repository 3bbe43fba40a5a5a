"""Reading sources: documents, word counts, chunked reading, file kinds and input errors."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
import sys
from pathlib import Path

import pytest

from thrifty.data import corpus
from thrifty.data.corpus import count_words, resolve_source, scan, truncate_words
from thrifty.errors import UserError


def docs(path: Path, max_doc_words: int = 512, errors: str = "strict") -> list[corpus.Document]:
    (source,) = resolve_source(str(path))
    return list(source.documents(max_doc_words, errors))


def random_text(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = ["the", "cat", "sat", "on", "a", "mat", "é", "naïve", "☃", "über", "x" * 30]
    spaces = [" ", " ", " ", "  ", "\t", " \u00a0"]  # NBSP is whitespace to str.split()
    return "".join(rng.choice(vocab) + rng.choice(spaces) for _ in range(n_words)).strip()


def test_words_are_whitespace_separated() -> None:
    assert count_words("a  b\tc\nd\u3000e") == 5
    assert count_words("   ") == 0
    assert count_words("don't stop-me now.") == 3


def test_each_nonempty_line_is_a_document(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("one two\n\n   \nthree\r\nfour five six", encoding="utf-8")
    found = docs(path)
    assert [d.text for d in found] == ["one two", "three", "four five six"]
    assert [d.words for d in found] == [2, 1, 3]
    assert [d.line for d in found] == [1, 4, 5]


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_long_line_is_split_into_bounded_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # tiny chunks put chunk boundaries inside words and inside multi-byte characters
    monkeypatch.setattr(corpus, "CHUNK_BYTES", chunk)
    text = random_text(1300)
    path = tmp_path / "one_line.train"
    path.write_text(text + "\nshort line\n", encoding="utf-8")
    found = docs(path, max_doc_words=512)
    assert [d.words for d in found] == [512, 512, 276, 2]
    assert all(d.words == count_words(d.text) for d in found)
    assert [w for d in found[:3] for w in d.text.split()] == text.split()
    assert found[0].text == text[: len(found[0].text)]
    assert [d.line for d in found] == [1, 1, 1, 2]


def test_gz_and_plain_read_the_same(tmp_path: Path) -> None:
    text = random_text(2000, seed=1) + "\nsecond line here\n"
    plain = tmp_path / "c.txt"
    plain.write_text(text, encoding="utf-8")
    packed = tmp_path / "c.txt.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    assert docs(plain, 100) == docs(packed, 100)
    scanned = scan(resolve_source(str(packed))[0], 100)
    assert scanned.sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()  # stored bytes
    assert scanned.words == count_words(text)
    assert scanned.doc_words.tolist() == [d.words for d in docs(packed, 100)]


def test_folder_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "deep" / "z.dev").write_text("z\n")
    (tmp_path / "b" / "a.test.gz").write_bytes(gzip.compress(b"a\n"))
    (tmp_path / "c.train").write_text("c\n")
    (tmp_path / "notes.md").write_text("not corpus\n")
    (tmp_path / "data.jsonl").write_text('{"text": "not in folders"}\n')
    (tmp_path / ".git" / "x.txt").write_text("hidden\n")
    names = [Path(s.name).relative_to(tmp_path).as_posix() for s in resolve_source(str(tmp_path))]
    assert names == ["b/a.test.gz", "b/deep/z.dev", "c.train"]


def test_missing_path_and_empty_folder_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope.txt: no such file"):
        resolve_source(str(tmp_path / "nope.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: folder has no text files"):
        resolve_source(str(tmp_path / "empty"))
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(UserError, match="table.csv: unsupported file type"):
        resolve_source(str(tmp_path / "table.csv"))


def test_jsonl_text_field(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"text": "hello world", "id": 1}, {"text": "multi\nline record"}, {"body": "x"}]
    path.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n", encoding="utf-8")
    found = docs(path)
    assert [(d.text, d.words, d.line) for d in found] == [
        ("hello world", 2, 1),
        ("multi\nline record", 3, 2),
    ]
    other = tmp_path / "e.jsonl.gz"
    other.write_bytes(gzip.compress(b'{"body": "in body"}\n'))
    (source,) = resolve_source(str(other), text_field="body")
    assert [d.text for d in source.documents()] == ["in body"]


def test_jsonl_missing_field_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:2: no field 'text' \(fields: body\)"):
        docs(path)
    path.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:2: not valid JSON"):
        docs(path)
    path.write_text('{"text": 3}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:1: field 'text' is int"):
        docs(path)


def test_undecodable_byte_names_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 5)
    path = tmp_path / "bad.txt"
    # valid multi-byte characters cut by chunk boundaries must not be reported
    path.write_bytes(b"good line \xc3\xa9\nsecond \xe2\x98\x83\nthird \xff here\nok\n")
    with pytest.raises(UserError, match=r"bad\.txt:3: undecodable byte"):
        docs(path)


def test_errors_replace_warns_once_per_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bad.txt.gz"
    path.write_bytes(gzip.compress(b"caf\xe9 one\nfine\n\xff\xfe two\n"))
    with caplog.at_level(logging.WARNING, logger="thrifty.data.corpus"):
        found = docs(path, errors="replace")
    assert [d.text for d in found] == ["caf\ufffd one", "fine", "\ufffd\ufffd two"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bad.txt.gz:1" in warnings[0].getMessage()


def test_truncate_words_keeps_spacing() -> None:
    assert truncate_words("a  b\tc d", 3) == "a  b\tc"
    assert truncate_words("  a b", 5) == "a b"


def test_hub_sources_need_the_hf_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="expected hf:OWNER/NAME"):
        resolve_source("hf:justaname")
    (source,) = resolve_source("hf:owner/name:config@validation")
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(UserError, match=r"thrifty\[hf\]"):
        list(source.documents())


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x\n")
    with pytest.raises(UserError, match="max_doc_words"):
        docs(path, max_doc_words=0)
    with pytest.raises(UserError, match="errors must be one of"):
        docs(path, errors="ignore")
