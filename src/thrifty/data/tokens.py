"""The token files of a prepared dataset: written by ``TokenWriter``, read by ``TokenStore``.

Each split is a flat array of token ids (``{split}.bin``, uint16 or uint32) plus an index of
int64 document start offsets ending with the total (``docs.idx`` for train, ``valid.idx``).
Every document starts with ``<s>``. ``manifest.json`` says the dtype and the counts.

``TokenStore`` memory-maps a split and cuts it into fixed-length training windows: window
``i`` is ``seq_len + 1`` tokens starting at ``i * seq_len``; inputs are its first ``seq_len``
tokens, targets its last ``seq_len``, and neighbouring windows share one boundary token, so
every token is a target exactly once per epoch. Windows cross document boundaries; the BOS at
each document start shows the model where one ends.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.data.tokenizer import BOS_ID
from thrifty.errors import UserError

if TYPE_CHECKING:
    import torch

FORMAT = "thrifty-data/1"
MANIFEST_FILE = "manifest.json"
SPLIT_FILES = {"train": ("train.bin", "docs.idx"), "valid": ("valid.bin", "valid.idx")}


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a prepared dataset folder (or of its ``manifest.json``)."""
    path = Path(path)
    file = path if path.name == MANIFEST_FILE and path.is_file() else path / MANIFEST_FILE
    if not file.is_file():
        raise UserError(f"{path}: not a prepared dataset (no {MANIFEST_FILE}); run thrifty prepare")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{file}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(f"{file}: format {found!r} is not {FORMAT!r}")
    return manifest


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class TokenWriter:
    """Appends documents (as BOS + ids) to the split files of a dataset folder being built."""

    def __init__(self, folder: Path, vocab_size: int) -> None:
        self.folder = Path(folder)
        self.dtype = token_dtype(vocab_size)
        self._files = {s: open(self.folder / SPLIT_FILES[s][0], "wb") for s in SPLIT_FILES}
        self._offsets = {s: array("q", [0]) for s in SPLIT_FILES}

    def add(self, split: str, documents: Sequence[Sequence[int]]) -> None:
        """Write each document's ids, prefixed with BOS, to ``split``."""
        if not documents:
            return
        bos = np.array([BOS_ID], dtype=self.dtype)
        parts = []
        offsets = self._offsets[split]
        for ids in documents:
            parts += [bos, np.asarray(ids, dtype=self.dtype)]
            offsets.append(offsets[-1] + 1 + len(ids))
        self._files[split].write(np.concatenate(parts).tobytes())

    def close(self) -> dict[str, Any]:
        """Flush to disk, write the indexes; the dtype and the token / document counts."""
        for split, f in self._files.items():
            if not f.closed:
                f.flush()
                os.fsync(f.fileno())
                f.close()
            offsets = np.asarray(self._offsets[split], dtype="<i8")
            offsets.tofile(self.folder / SPLIT_FILES[split][1])
        return {
            "dtype": self.dtype.name,
            "tokens": {s: int(o[-1]) for s, o in self._offsets.items()},
            "documents": {s: len(o) - 1 for s, o in self._offsets.items()},
        }

    def __enter__(self) -> TokenWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for f in self._files.values():
            f.close()  # after an error the folder is discarded; just release the handles


class TokenStore:
    """Read-only view of ``{split}.bin`` in a prepared dataset folder."""

    def __init__(self, path: Path, split: str) -> None:
        self.path = Path(path)
        self.split = split
        self.manifest = load_manifest(self.path)
        if split not in SPLIT_FILES:
            raise UserError(f"split {split!r} is not one of {', '.join(SPLIT_FILES)}")
        bin_name, idx_name = SPLIT_FILES[split]
        file = self.path / bin_name
        if not file.is_file():
            raise UserError(f"{file}: missing from the prepared dataset")
        self.dtype = np.dtype(self.manifest["dtype"])
        expected = int(self.manifest["tokens"][split])
        found = file.stat().st_size // self.dtype.itemsize
        if found != expected:
            raise UserError(f"{file}: holds {found:,} tokens, the manifest says {expected:,}")
        # np.memmap refuses empty files; an empty split (no validation) is still a valid store
        self.tokens = (
            np.memmap(file, dtype=self.dtype, mode="r") if found else np.zeros(0, self.dtype)
        )
        self._idx_file = self.path / idx_name

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def words_per_token(self) -> float:
        """Training words behind one token, for charging the ledger (train split of the set)."""
        return self.manifest["words"]["train"] / max(self.manifest["tokens"]["train"], 1)

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    def doc_offsets(self) -> np.ndarray:
        """(n_docs + 1,) int64 token offsets where each document starts, then the total."""
        return np.fromfile(self._idx_file, dtype="<i8")

    def num_windows(self, seq_len: int) -> int:
        """Non-overlapping windows of ``seq_len + 1`` tokens (stride ``seq_len``)."""
        self._check(seq_len)
        return (len(self.tokens) - 1) // seq_len

    def window(self, i: int, seq_len: int) -> np.ndarray:
        """(seq_len + 1,) token ids of window ``i``."""
        n = self.num_windows(seq_len)
        if not 0 <= i < n:
            raise IndexError(f"window {i} out of range for {n} windows of {seq_len} tokens")
        start = i * seq_len
        return np.asarray(self.tokens[start : start + seq_len + 1])

    def windows(self, indices: Sequence[int] | np.ndarray, seq_len: int) -> torch.Tensor:
        """(B, seq_len + 1) int64 tensor of the windows at ``indices``."""
        import torch  # here, so that `thrifty prepare` and `audit` start without loading torch

        n = self.num_windows(seq_len)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"window indices must be in [0, {n}) for seq_len {seq_len}")
        positions = idx[:, None] * seq_len + np.arange(seq_len + 1)  # (B, seq_len + 1)
        return torch.from_numpy(self.tokens[positions].astype(np.int64))

    def _check(self, seq_len: int) -> None:
        if seq_len < 1:
            raise UserError(f"seq_len must be positive, got {seq_len}")
        if len(self.tokens) < seq_len + 1:
            raise UserError(
                f"{self.path}: {self.split} split has {len(self.tokens):,} tokens, fewer than "
                f"seq_len + 1 = {seq_len + 1:,}; prepare more words or shorten seq_len"
            )
