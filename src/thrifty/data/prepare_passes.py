"""The passes of ``thrifty prepare`` over the selected documents: ``Passes`` re-reads the
sources and yields each selected document (for the tokenizer's training, then for the token
files); ``write_tokens`` encodes them in batches into ``train.bin`` / ``valid.bin``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress
from tokenizers import Tokenizer

from thrifty.data.corpus import SourceScan, truncate_words
from thrifty.data.provenance import TextDigest
from thrifty.data.tokens import TokenWriter
from thrifty.errors import UserError

_BATCH_CHARS = 1 << 22  # texts per encode_batch call: enough to keep every core busy


class Passes:
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


def write_tokens(passes: Passes, tok: Tokenizer, folder: Path) -> dict[str, Any]:
    """Encode every selected document into train.bin / valid.bin, in batches."""
    batch: list[tuple[str, bool]] = []
    chars = 0
    # of the training and the validation text, for the ledger's proof of what it charges
    digests = {False: TextDigest(), True: TextDigest()}

    def flush() -> None:
        encodings = tok.encode_batch([text for text, _ in batch], add_special_tokens=False)
        for split, want_valid in (("train", False), ("valid", True)):
            ids = [e.ids for (_, v), e in zip(batch, encodings, strict=True) if v == want_valid]
            writer.add(split, ids)
        batch.clear()

    with TokenWriter(folder, tok.get_vocab_size()) as writer:
        for text, is_valid in passes.documents("tokenizing", train_only=False):
            batch.append((text, is_valid))
            digests[is_valid].add(text)
            chars += len(text)
            if chars >= _BATCH_CHARS:
                flush()
                chars = 0
        if batch:
            flush()
        return {
            **writer.close(),
            "words": dict(passes.words),
            "train_sha256": digests[False].hexdigest(),
            "valid_sha256": digests[True].hexdigest(),
        }
