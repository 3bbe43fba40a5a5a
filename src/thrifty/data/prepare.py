"""Sources -> a prepared dataset folder: selected words, tokenizer, token files, manifest, ledger.

Three streaming passes over the sources: count the words of every document; train the
tokenizer on the selected training documents; encode the selected documents. In between,
``budget.select_prefix`` / ``select_sample`` decide how many words of each document to keep so the
total is exactly the budget, and ``split_valid`` holds out whole documents for validation.
Everything is written into ``<out>.tmp-<pid>/`` and renamed to ``out`` only when complete.

The ledger records the sha256 of the training text as encoded (``Ledger.texts``) and what the
tokenizer was trained on; a reused tokenizer must come with a record of its training words
(``thrifty.data.provenance``), which the ledger charges unless they are provably words it
already charges.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from tokenizers import Tokenizer

from thrifty import __version__
from thrifty.atomic import replace_folder, write_text_atomic
from thrifty.data.budget import (
    Ledger,
    select_prefix,
    select_sample,
    split_valid,
)
from thrifty.data.corpus import SourceScan, resolve_source, scan, truncate_words
from thrifty.data.provenance import TextDigest, reused_tokenizer, trained_record
from thrifty.data.tokenizer import MIN_VOCAB, SPECIAL_IDS, train_tokenizer
from thrifty.data.tokens import FORMAT, MANIFEST_FILE, SPLIT_FILES, TokenWriter, load_manifest
from thrifty.errors import UserError

__all__ = [
    "FORMAT",
    "MANIFEST_FILE",
    "load_manifest",
    "prepare",
    "scan_sources",
    "write_selection",
    "write_tokenized",
]

_BATCH_CHARS = 1 << 22  # texts per encode_batch call: enough to keep every core busy


def prepare(
    sources: list[str | Path],
    out: Path,
    *,
    budget_words: int | None,
    selection: str = "sample",
    seed: int = 0,
    vocab_size: int = 8192,
    valid_fraction: float = 0.01,
    max_doc_words: int = 512,
    text_field: str = "text",
    errors: str = "strict",
    tokenizer_path: Path | None = None,
    tokenizer_words: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Prepare ``sources`` into the dataset folder ``out`` and return its manifest.

    ``tokenizer_path``: reuse this tokenizer instead of training one; ``tokenizer_words``: its
    training words, for a tokenizer with no record of them (``thrifty.data.provenance``).
    """
    _check_settings(sources, budget_words, selection, valid_fraction, vocab_size)
    out = Path(out)
    _check_out(out, overwrite)
    reused = _reused(tokenizer_path, tokenizer_words)
    ledger = Ledger(
        budget_words=budget_words,
        selection="all" if budget_words is None else selection,
        seed=seed,
    )
    with Progress(console=Console(stderr=True), disable=not progress) as bar:
        scans = _scan_sources(sources, text_field, max_doc_words, errors, bar)
        doc_words = [s.doc_words for s in scans]
        if budget_words is None:
            take = [w.copy() for w in doc_words]
        elif selection == "prefix":
            take = select_prefix(doc_words, budget_words)
        else:
            take = select_sample(doc_words, budget_words, seed)
        settings = {"max_doc_words": max_doc_words, "valid_fraction": valid_fraction}
        settings |= {"text_field": text_field, "errors": errors}
        return _write(scans, take, out, ledger, bar, settings, seed, vocab_size, reused)


def scan_sources(
    sources: list[str | Path],
    *,
    max_doc_words: int = 512,
    text_field: str = "text",
    errors: str = "strict",
    progress: bool = False,
) -> list[SourceScan]:
    """The first pass of ``prepare``: fingerprint every source, count each document's words."""
    with Progress(console=Console(stderr=True), disable=not progress) as bar:
        return _scan_sources(sources, text_field, max_doc_words, errors, bar)


def write_selection(
    scans: list[SourceScan],
    take: list[np.ndarray],
    out: Path,
    *,
    ledger: Ledger,
    seed: int = 0,
    vocab_size: int = 8192,
    valid_fraction: float = 0.01,
    max_doc_words: int = 512,
    text_field: str = "text",
    errors: str = "strict",
    tokenizer_path: Path | None = None,
    tokenizer_words: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write a selection made outside ``prepare`` (e.g. CoLoR-Filter) as the dataset ``out``.

    ``take`` holds, per source of ``scans`` (made with the same ``max_doc_words``), the words kept
    from each document (0: skipped; fewer than the document: its first words). ``ledger`` says
    how they were chosen (budget, selection, auxiliary models); sources, prepared words, texts
    and tokenizer are filled in here. Returns the manifest.
    """
    _check_settings(["selection"], None, "sample", valid_fraction, vocab_size)
    out = Path(out)
    _check_out(out, overwrite)
    reused = _reused(tokenizer_path, tokenizer_words)
    settings = {"max_doc_words": max_doc_words, "valid_fraction": valid_fraction}
    settings |= {"text_field": text_field, "errors": errors}
    with Progress(console=Console(stderr=True), disable=not progress) as bar:
        return _write(scans, take, out, ledger, bar, settings, seed, vocab_size, reused)


def write_tokenized(
    out: Path,
    tok: Tokenizer,
    documents: Iterable[tuple[str, Sequence[int]]],
    *,
    ledger: Ledger,
    words: dict[str, int],
    settings: dict[str, Any],
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write documents tokenized outside ``prepare`` as the dataset ``out``, atomically.

    ``documents``: (split, ids without the BOS the writer adds), in order; ``words``: the words
    of each split, for the manifest and ``ledger.prepared_words``; the ``ledger`` is otherwise
    complete. ``extra``: keys added to the manifest. Returns the manifest.
    """
    out = Path(out)
    _check_out(out, overwrite)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        tok.save(str(tmp / "tokenizer.json"))
        with TokenWriter(tmp, tok.get_vocab_size()) as writer:
            for split, ids in documents:
                writer.add(split, [ids])
            counts = {**writer.close(), "words": dict(words)}
        ledger.prepared_words = dict(words)
        manifest = _manifest(tok, counts, ledger, settings, []) | (extra or {})
        write_text_atomic(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave half a dataset behind
        raise
    return manifest


def _reused(path: Path | None, words: int | None) -> tuple[Tokenizer, dict[str, Any]] | None:
    """A reused tokenizer and its ledger record, checked before any long pass."""
    if path is None:
        if words is not None:
            raise UserError("--tokenizer-words is for a reused tokenizer; pass --tokenizer PATH")
        return None
    return reused_tokenizer(path, words)


def _write(
    scans: list[SourceScan],
    take: list[np.ndarray],
    out: Path,
    ledger: Ledger,
    bar: Progress,
    settings: dict[str, Any],
    seed: int,
    vocab_size: int,
    reused: tuple[Tokenizer, dict[str, Any]] | None,
) -> dict[str, Any]:
    """Hold out validation documents, then build the folder in a temp copy and swap it in."""
    valid = split_valid(take, settings["valid_fraction"], seed)
    passes = _Passes(scans, take, valid, settings["max_doc_words"], settings["errors"], bar)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        manifest = _build(tmp, passes, vocab_size, reused, ledger, settings)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave half a dataset behind
        raise
    return manifest


def _build(
    folder: Path,
    passes: _Passes,
    vocab_size: int,
    reused: tuple[Tokenizer, dict[str, Any]] | None,
    ledger: Ledger,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Write tokenizer, token files and manifest into ``folder``; return the manifest."""
    if reused is None:
        texts = (text for text, _ in passes.documents("training tokenizer", train_only=True))
        tok = train_tokenizer(texts, vocab_size, length=passes.train_docs)
    else:
        tok, ledger.tokenizer = reused
    tok.save(str(folder / "tokenizer.json"))
    counts = _write_tokens(passes, tok, folder)
    if reused is None:  # trained on exactly the training text just encoded
        words, sources = passes.words["train"], passes.tokenizer_sources()
        ledger.tokenizer = trained_record(tok, words, sources, counts["train_sha256"])
    ledger.sources = passes.ledger_sources()
    ledger.prepared_words = counts["words"]
    ledger.texts = [counts["train_sha256"]]
    manifest = _manifest(tok, counts, ledger, settings, passes.truncated())
    write_text_atomic(folder / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _manifest(
    tok: Tokenizer,
    counts: dict[str, Any],
    ledger: Ledger,
    settings: dict[str, Any],
    truncated: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "dtype": counts["dtype"],
        "vocab_size": tok.get_vocab_size(),
        "special_tokens": dict(SPECIAL_IDS),
        "bos_per_document": True,
        "tokens": counts["tokens"],
        "words": counts["words"],
        "documents": counts["documents"],
        "files": {split: list(names) for split, names in SPLIT_FILES.items()},
        "settings": settings,
        "truncated": truncated,
        "ledger": ledger.to_dict(),
        "created_by": f"thrifty {__version__}",
    }


def _check_settings(
    sources: list[str | Path],
    budget_words: int | None,
    selection: str,
    valid_fraction: float,
    vocab_size: int,
) -> None:
    if not sources:
        raise UserError("no sources given")
    if budget_words is not None and budget_words < 1:
        raise UserError(f"budget_words must be positive, got {budget_words}")
    if selection not in ("prefix", "sample"):
        raise UserError(f"selection must be 'prefix' or 'sample', got {selection!r}")
    if not 0 <= valid_fraction < 1:
        raise UserError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if vocab_size < MIN_VOCAB:  # fail before the long passes, not after
        raise UserError(f"vocab_size must be at least {MIN_VOCAB}, got {vocab_size}")


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if (out / MANIFEST_FILE).is_file():
        if not overwrite:
            raise UserError(f"{out}: a prepared dataset is already here; pass --overwrite")
    elif any(out.iterdir()):
        raise UserError(f"{out}: folder is not empty and not a prepared dataset; not replacing it")


def _scan_sources(
    specs: list[str | Path], text_field: str, max_doc_words: int, errors: str, bar: Progress
) -> list[SourceScan]:
    per_spec = [resolve_source(spec, text_field) for spec in specs]
    task = bar.add_task("counting words", total=sum(len(s) for s in per_spec))
    scans = []
    for spec, sources in zip(specs, per_spec, strict=True):
        found = []
        for source in sources:
            found.append(scan(source, max_doc_words, errors))
            bar.advance(task)
        if sum(s.words for s in found) == 0:
            raise UserError(f"{spec}: no words (every line is empty)")
        scans.extend(found)
    return scans


class _Passes:
    """Re-reads the sources and yields the selected documents, (text, is_valid)."""

    def __init__(
        self,
        scans: list[SourceScan],
        take: list[np.ndarray],
        valid: list[np.ndarray],
        max_doc_words: int,
        errors: str,
        bar: Progress,
    ) -> None:
        self.scans, self.take, self.valid = scans, take, valid
        self.max_doc_words, self.errors, self.bar = max_doc_words, errors, bar
        self.words = {
            "train": sum(int(t[~v].sum()) for t, v in zip(take, valid, strict=True)),
            "valid": sum(int(t[v].sum()) for t, v in zip(take, valid, strict=True)),
        }
        self.train_docs = sum(int(((t > 0) & ~v).sum()) for t, v in zip(take, valid, strict=True))

    def ledger_sources(self) -> list[dict[str, Any]]:
        return [
            {"path": s.source.name, "sha256": s.sha256, "words_total": s.words}
            | {"words_used": int(t.sum())}
            for s, t in zip(self.scans, self.take, strict=True)
        ]

    def tokenizer_sources(self) -> list[dict[str, Any]]:
        """Training words per source file: what a tokenizer trained here reads."""
        rows = []
        for s, t, v in zip(self.scans, self.take, self.valid, strict=True):
            if int(t[~v].sum()):
                rows.append({"path": s.source.name, "sha256": s.sha256, "words": int(t[~v].sum())})
        return rows

    def truncated(self) -> list[dict[str, Any]]:
        """Which documents were cut so that the total is exactly the budget."""
        cut = []
        for s, t in zip(self.scans, self.take, strict=True):
            for i in np.flatnonzero((t > 0) & (t < s.doc_words)):
                cut.append({"path": s.source.name, "document": int(i), "words": int(t[i])})
        return cut

    def documents(self, description: str, train_only: bool) -> Iterator[tuple[str, bool]]:
        total = self.words["train"] + (0 if train_only else self.words["valid"])
        task = self.bar.add_task(description, total=total)
        for scan_, take, valid in zip(self.scans, self.take, self.valid, strict=True):
            chosen = np.flatnonzero(take)
            if len(chosen) == 0:
                continue
            last = int(chosen[-1])
            for i, doc in enumerate(
                scan_.source.documents(self.max_doc_words, self.errors, warn=False)
            ):
                if i >= len(take) or doc.words != scan_.doc_words[i]:
                    raise UserError(f"{scan_.source.name}:{doc.line}: changed while being read")
                n = int(take[i])
                if n and not (train_only and valid[i]):
                    yield (
                        (doc.text if n == doc.words else truncate_words(doc.text, n)),
                        bool(valid[i]),
                    )
                    self.bar.advance(task, n)
                if i == last:
                    break
            else:  # the source ended before its last selected document
                raise UserError(f"{scan_.source.name}: changed while being read")


def _write_tokens(passes: _Passes, tok: Tokenizer, folder: Path) -> dict[str, Any]:
    """Encode every selected document into train.bin / valid.bin, in batches."""
    batch: list[tuple[str, bool]] = []
    chars = 0
    digest = TextDigest()  # of the training text, for the ledger's proof of what it charges

    def flush() -> None:
        encodings = tok.encode_batch([text for text, _ in batch], add_special_tokens=False)
        for split, want_valid in (("train", False), ("valid", True)):
            ids = [e.ids for (_, v), e in zip(batch, encodings, strict=True) if v == want_valid]
            writer.add(split, ids)
        batch.clear()

    with TokenWriter(folder, tok.get_vocab_size()) as writer:
        for text, is_valid in passes.documents("tokenizing", train_only=False):
            batch.append((text, is_valid))
            if not is_valid:
                digest.add(text)
            chars += len(text)
            if chars >= _BATCH_CHARS:
                flush()
                chars = 0
        if batch:
            flush()
        return {**writer.close(), "words": dict(passes.words), "train_sha256": digest.hexdigest()}
