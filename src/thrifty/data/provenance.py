"""What a tokenizer was trained on, so that the ledger can charge its words.

BabyLM 2025 counts the training data of every ancillary model, the tokenizer included
(papers/babylm_challenge.md). A tokenizer trained by ``thrifty prepare`` records the words it
read, the files they came from (sha256) and the sha256 of the exact text (``text_sha256``). A
tokenizer reused with ``--tokenizer PATH`` brings that record along from the prepared dataset
(``manifest.json``) or run folder (``ledger.json``) it sits in, provided the record describes this
very tokenizer (same sha256). A tokenizer with no record is refused unless the user states its
training words (``--tokenizer-words N``); those are charged in full, since nothing proves which
words they were. ``Ledger.tokenizer_words`` decides what a reused tokenizer adds to the charge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from thrifty.data.budget import LEDGER_FILE, Ledger
from thrifty.data.tokenizer import load_tokenizer, tokenizer_sha256
from thrifty.data.tokens import MANIFEST_FILE, load_manifest
from thrifty.errors import UserError


class TextDigest:
    """sha256 of a text given document by document: each document's UTF-8 bytes and a newline.
    Two prepared training splits with the same digest hold the same words in the same order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, document: str) -> None:
        self._hash.update(document.encode("utf-8"))
        self._hash.update(b"\n")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def text_sha256(documents: Iterable[str]) -> str:
    """The ``TextDigest`` of ``documents``."""
    digest = TextDigest()
    for document in documents:
        digest.add(document)
    return digest.hexdigest()


def trained_record(
    tok: Tokenizer, words: int, sources: list[dict[str, Any]], text: str
) -> dict[str, Any]:
    """The ledger's record of a tokenizer trained here on ``words`` words of ``sources``
    ({"path", "sha256", "words"}) whose text has sha256 ``text``."""
    return {
        "trained_on_words": int(words),
        "sha256": tokenizer_sha256(tok),
        "vocab_size": tok.get_vocab_size(),
        "sources": sources,
        "text_sha256": text,
    }


def reused_tokenizer(path: Path, stated_words: int | None) -> tuple[Tokenizer, dict[str, Any]]:
    """Load the tokenizer at ``path`` and the ledger's record of it: its recorded provenance, or
    the user's statement of its training words; a UserError when there is neither, or both."""
    path = Path(path)
    tok = load_tokenizer(path)
    sha = tokenizer_sha256(tok)
    found, origin = recorded_provenance(path, sha)
    if found is not None and stated_words is not None:
        raise UserError(
            f"{path}: {origin} records the words this tokenizer was trained on "
            f"({found['trained_on_words']:,}); drop --tokenizer-words"
        )
    if found is None:
        if stated_words is None:
            raise UserError(
                f"{path}: nothing records the words this tokenizer was trained on (no dataset "
                "manifest or run ledger beside it describes it); state them: --tokenizer-words N"
            )
        if stated_words < 0:
            raise UserError(f"--tokenizer-words must be 0 or more, got {stated_words}")
        found = {"trained_on_words": int(stated_words), "sources": [], "stated": True}
    record = {"sha256": sha, "vocab_size": tok.get_vocab_size(), **found, "path": str(path)}
    return tok, record


def recorded_provenance(path: Path, sha256: str) -> tuple[dict[str, Any] | None, str]:
    """({"trained_on_words", "sources", "text_sha256"[, "stated"]}, where it was found) for the
    tokenizer of sha256 ``sha256`` at ``path``, from the dataset or run folder holding it."""
    folder = path if path.is_dir() else path.parent
    if (folder / MANIFEST_FILE).is_file():
        origin = str(folder / MANIFEST_FILE)
        ledger = Ledger.from_dict(load_manifest(folder)["ledger"], origin)
    elif (folder / LEDGER_FILE).is_file():
        origin = str(folder / LEDGER_FILE)
        ledger = Ledger.load(folder)
    else:
        return None, ""
    record = ledger.tokenizer
    if record.get("sha256") != sha256:  # the record is of another tokenizer
        return None, origin
    keys = ("trained_on_words", "sources", "text_sha256", "stated")
    if "path" in record:  # reused there as well: its record travels on
        if not (record.get("sources") or record.get("stated")):
            return None, origin  # an older record that could not tell where its words came from
        return {k: record[k] for k in keys if k in record}, origin
    # trained there on that dataset's training split; older records lack the files, so the
    # dataset's own stand in (their words include the validation split: an overcount)
    sources = record.get("sources") or [
        {"path": s["path"], "sha256": s["sha256"], "words": int(s["words_used"])}
        for s in ledger.sources
        if s.get("words_used")
    ]
    found = {"trained_on_words": int(record.get("trained_on_words", 0)), "sources": sources}
    found["text_sha256"] = record.get("text_sha256", "")
    return found, origin
