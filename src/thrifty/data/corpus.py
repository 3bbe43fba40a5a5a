"""Read text sources as a stream of documents and count their words the BabyLM way.

A source is a text file (``.txt .train .dev .test``, each optionally ``.gz``), a folder of them,
a ``.jsonl[.gz]`` file with a text field, a hub dataset ``hf:OWNER/NAME[:CONFIG][@SPLIT]``, or
``py:FOLDER``: every Python file under it, each one document (``py:stdlib``: this interpreter's
standard library; ``thrifty.data.code_corpus``).
Each non-empty line of a text file is a document; each JSONL record or hub row is a document.
A document longer than ``max_doc_words`` is cut at whitespace into pieces of at most that many
words, so BabyLM's one-line, multi-megabyte files become many bounded documents.

Words are ``len(text.split())``, as in the BabyLM challenge's own counts. Files are read in
1 MiB chunks, never whole lines, so a single 3 MB line costs a few MB of memory.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import logging
import re
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.data.hub import hub_failure
from thrifty.errors import UserError

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".train", ".dev", ".test")
CHUNK_BYTES = 1 << 20
ERRORS = ("strict", "replace")


def count_words(text: str) -> int:
    """Whitespace-separated words, the BabyLM definition."""
    return len(text.split())


@dataclass(frozen=True)
class Document:
    """One document: its text, its word count, and the 1-based line (or row) it came from."""

    text: str
    words: int
    line: int


@dataclass(frozen=True)
class Source:
    """One file or hub dataset; the unit the ledger records (path, sha256, words)."""

    name: str  # the path as given, or the "hf:..." spec
    kind: str  # "text" | "jsonl" | "hf" | "code"
    text_field: str = "text"

    def documents(
        self, max_doc_words: int = 512, errors: str = "strict", warn: bool = True
    ) -> Iterator[Document]:
        """Stream the documents of this source in order.

        ``warn=False`` silences the replaced-bytes warning on re-reads of a file already read.
        """
        _check_args(max_doc_words, errors)
        if self.kind == "text":
            return _text_documents(Path(self.name), max_doc_words, errors, warn)
        if self.kind == "code":  # a Python file is one record (thrifty.data.code_corpus)
            return _split_records(iter([(1, _code_text(Path(self.name)))]), max_doc_words)
        if self.kind == "jsonl":
            records = _jsonl_records(Path(self.name), self.text_field, errors, warn)
            return _split_records(records, max_doc_words)
        return _split_records(_hf_records(self.name, self.text_field), max_doc_words)

    def sha256(self) -> str:
        """sha256 of the stored bytes (compressed if .gz); for a hub dataset, of its texts."""
        digest = hashlib.sha256()
        if self.kind == "hf":
            for _, text in _hf_records(self.name, self.text_field):
                digest.update(text.encode("utf-8") + b"\n")
            return digest.hexdigest()
        with open(self.name, "rb") as f:
            while block := f.read(CHUNK_BYTES):
                digest.update(block)
        return digest.hexdigest()


@dataclass(frozen=True)
class SourceScan:
    """First-pass facts about a source: its fingerprint and the word count of each document."""

    source: Source
    sha256: str
    doc_words: np.ndarray  # (n_docs,) int64

    @property
    def words(self) -> int:
        return int(self.doc_words.sum())


def scan(source: Source, max_doc_words: int = 512, errors: str = "strict") -> SourceScan:
    """Count the words of every document in ``source`` and fingerprint it."""
    counts = array("q", (doc.words for doc in source.documents(max_doc_words, errors)))
    doc_words = np.frombuffer(counts, dtype=np.int64).copy() if counts else np.zeros(0, np.int64)
    return SourceScan(source, source.sha256(), doc_words)


def _is_text(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.endswith(TEXT_SUFFIXES)


def _is_jsonl(path: Path) -> bool:
    return path.name.removesuffix(".gz").endswith(".jsonl")


def resolve_source(spec: str | Path, text_field: str = "text") -> list[Source]:
    """The sources named by one command-line argument: a file, a folder, or ``hf:...``."""
    spec = str(spec)
    if spec.startswith("py:"):  # every *.py file under a folder ("py:stdlib": the stdlib)
        from thrifty.data.code_corpus import corpus_root, python_paths

        return [Source(str(p), "code") for p in python_paths(corpus_root(spec[3:]))]
    if spec.startswith("hf:"):
        parse_hf_spec(spec)  # fail on a malformed spec before any download
        return [Source(spec, "hf", text_field)]
    path = Path(spec)
    if not path.exists():
        raise UserError(f"{spec}: no such file or folder")
    if path.is_dir():
        files = [
            p
            for p in sorted(path.rglob("*"))
            # hidden folders (.git, .cache) are never corpus text
            if p.is_file() and _is_text(p) and not _hidden(p.relative_to(path))
        ]
        if not files:
            kinds = ", ".join(f"{s}[.gz]" for s in TEXT_SUFFIXES)
            raise UserError(f"{spec}: folder has no text files ({kinds})")
        return [Source(str(p), "text", text_field) for p in files]
    if _is_jsonl(path):
        return [Source(spec, "jsonl", text_field)]
    if _is_text(path):
        return [Source(spec, "text", text_field)]
    kinds = ", ".join(f"{s}[.gz]" for s in (*TEXT_SUFFIXES, ".jsonl"))
    raise UserError(f"{spec}: unsupported file type; expected one of {kinds}, a folder, or hf:")


def _code_text(path: Path) -> str:
    from thrifty.data.code_corpus import read_text
    from thrifty.data.obfuscate import ObfuscationError

    try:
        return read_text(path)
    except (ObfuscationError, OSError) as e:
        raise UserError(f"{path}: {e}") from None


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _check_args(max_doc_words: int, errors: str) -> None:
    if max_doc_words < 1:
        raise UserError(f"max_doc_words must be at least 1, got {max_doc_words}")
    if errors not in ERRORS:
        raise UserError(f"errors must be one of {', '.join(ERRORS)}, got {errors!r}")


@lru_cache(maxsize=8)
def _doc_pattern(max_words: int) -> re.Pattern[str]:
    # One match = up to max_words words with their inner whitespace kept. re's \s and
    # str.split() share Python's definition of whitespace, so word counts agree.
    return re.compile(r"\S+(?:\s+\S+){0," + str(max_words - 1) + "}")


def truncate_words(text: str, n_words: int) -> str:
    """The first ``n_words`` words of ``text``, with their original spacing."""
    match = _doc_pattern(n_words).search(text)
    return match.group() if match else ""


def _open_binary(path: Path) -> Any:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _decoded_pieces(path: Path, errors: str, warn: bool) -> Iterator[tuple[int, str, bool]]:
    """(line number, text piece, piece ends its line), decoding UTF-8 in 1 MiB chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    line = 1
    try:
        with _open_binary(path) as f:
            while True:
                chunk = f.read(CHUNK_BYTES)
                final = not chunk
                buffered = decoder.getstate()[0]
                try:
                    text = decoder.decode(chunk, final)
                except UnicodeDecodeError as e:
                    # error offsets count from the decoder's buffered bytes, then the chunk
                    data = buffered + chunk
                    bad = line + data[: e.start].count(b"\n")
                    if errors == "strict":
                        byte = data[e.start : e.start + 1]
                        raise UserError(
                            f"{path}:{bad}: undecodable byte {byte!r} (not UTF-8); "
                            "fix the file or use errors='replace' (--errors replace)"
                        ) from None
                    if warn:
                        log.warning("%s:%d: undecodable bytes replaced with U+FFFD", path, bad)
                    decoder = codecs.getincrementaldecoder("utf-8")("replace")
                    text = decoder.decode(data, final)
                parts = text.split("\n")
                for part in parts[:-1]:
                    yield line, part, True
                    line += 1
                if parts[-1] or final:
                    yield line, parts[-1], final
                if final:
                    return
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read ({e})") from None


def _text_documents(path: Path, max_words: int, errors: str, warn: bool) -> Iterator[Document]:
    pattern = _doc_pattern(max_words)
    carry = ""
    for line, piece, ends in _decoded_pieces(path, errors, warn):
        text = carry + piece
        matches = list(pattern.finditer(text))
        carry = ""
        if not ends and matches:
            # the last piece may continue in the next chunk: keep it for the next round
            carry = text[matches[-1].start() :]
            matches.pop()
        for match in matches:
            doc = match.group()
            yield Document(doc, len(doc.split()), line)


def _split_records(records: Iterator[tuple[int, str]], max_words: int) -> Iterator[Document]:
    pattern = _doc_pattern(max_words)
    for line, text in records:
        for match in pattern.finditer(text):
            doc = match.group()
            yield Document(doc, len(doc.split()), line)


def _jsonl_records(path: Path, field: str, errors: str, warn: bool) -> Iterator[tuple[int, str]]:
    pending: list[str] = []
    for line, piece, ends in _decoded_pieces(path, errors, warn):
        pending.append(piece)
        if not ends:
            continue
        raw = "".join(pending).strip()
        pending = []
        if not raw:
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{line}: not valid JSON ({e.msg})") from None
        yield line, _field_text(record, field, f"{path}:{line}")


def _field_text(record: Any, field: str, where: str) -> str:
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if field not in record:
        keys = ", ".join(sorted(record)) or "none"
        raise UserError(f"{where}: no field {field!r} (fields: {keys}); pick one with --text-field")
    text = record[field]
    if not isinstance(text, str):
        raise UserError(f"{where}: field {field!r} is {type(text).__name__}, expected a string")
    return text


def parse_hf_spec(spec: str) -> tuple[str, str | None, str]:
    """'hf:OWNER/NAME[:CONFIG][@SPLIT]' -> (name, config, split)."""
    rest, _, split = spec[3:].partition("@")
    name, _, config = rest.partition(":")
    if not name or "/" not in name:
        raise UserError(f"{spec}: expected hf:OWNER/NAME[:CONFIG][@SPLIT]")
    return name, config or None, split or "train"


def _hf_records(spec: str, field: str) -> Iterator[tuple[int, str]]:
    name, config, split = parse_hf_spec(spec)
    try:
        import datasets  # optional: only hub sources need it
    except ImportError:
        raise UserError(f"{spec}: reading hub datasets needs `pip install thrifty[hf]`") from None
    try:
        data = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # the hub raises many types; the user needs the message
        raise UserError(
            f"{spec}: cannot load the dataset from the Hugging Face Hub ({hub_failure(e)}); "
            "offline, load it once online (it is then cached; HF_DATASETS_OFFLINE=1 reads the "
            "cache), or pass a local copy: a folder of text files or a .jsonl file"
        ) from None
    for row_index, row in enumerate(data):
        yield row_index + 1, _field_text(row, field, f"{spec} row {row_index + 1}")
