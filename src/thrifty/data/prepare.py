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
from collections.abc import Iterable, Sequence
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
from thrifty.data.corpus import SourceScan, resolve_source, scan
from thrifty.data.prepare_passes import Passes, write_tokens
from thrifty.data.provenance import reused_tokenizer, trained_record
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
    passes = Passes(scans, take, valid, settings["max_doc_words"], settings["errors"], bar)
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
    passes: Passes,
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
    counts = write_tokens(passes, tok, folder)
    if reused is None:  # trained on exactly the training text just encoded
        words, sources = passes.words["train"], passes.tokenizer_sources()
        ledger.tokenizer = trained_record(tok, words, sources, counts["train_sha256"])
    ledger.sources = passes.ledger_sources()
    ledger.prepared_words = counts["words"]
    ledger.texts = [counts["train_sha256"]]
    if counts["words"].get("valid"):
        ledger.valid_texts = [counts["valid_sha256"]]
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
