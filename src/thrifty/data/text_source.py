"""``text``: a prepared text dataset as a data source (``thrifty.data.source``).

Items are the ``TokenStore``'s windows: window ``i`` is ``seq_len + 1`` tokens from
``i * seq_len``; the ledger's unit is words, charged at the training split's words per token;
the tokenizer decides the model's vocabulary and is copied into the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from thrifty.data.source import SOURCES
from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError


@SOURCES.register("text")
class TextSource:
    @dataclass(kw_only=True)
    class Config:
        pass  # everything a text source needs is in its folder's manifest

    unit = "words"
    run_files = ("tokenizer.json",)

    def __init__(self, path: Path, split: str) -> None:
        self.store = TokenStore(path, split)
        self.path, self.split, self.manifest = self.store.path, split, self.store.manifest

    def num_items(self, seq_len: int) -> int:
        return self.store.num_windows(seq_len)

    def batch(self, indices, seq_len: int) -> dict[str, Any]:
        return {"ids": self.store.windows(indices, seq_len)}

    @property
    def units_per_token(self) -> float:
        return self.store.words_per_token

    def fit(self, model):
        """``model`` (a ModelConfig) with the tokenizer's vocabulary; a UserError for another."""
        vocab = self.store.vocab_size
        if model.vocab_size not in (None, vocab):
            raise UserError(
                f"model.vocab_size={model.vocab_size} does not match the tokenizer of "
                f"{self.path} ({vocab} tokens)"
            )
        return replace(model, vocab_size=vocab)

    def item_tokens(self, model) -> None:
        return None  # windows of data.seq_len tokens
