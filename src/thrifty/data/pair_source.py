"""``pairs``: a prepared image–caption set (``thrifty.data.pairs``) as a data source
(``thrifty.data.source``).

Item ``i`` is pair ``i`` of the split: ``batch`` gives what an image set's does (``images``
(B, C, H, W) in [0, 1], ``labels`` (B,)) plus ``captions`` (B, L) right-padded token ids and
``caption_padding`` (B, L) bool, True at real tokens (``Transformer.forward``'s convention).
The ledger's unit is pairs, charged per patch like images; the caption tokenizer decides
``model.vocab_size`` (the text tower the ``clip`` objective owns reads it) and is copied into
the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from thrifty.data.image_source import ImageSource
from thrifty.data.images import load_split
from thrifty.data.pairs import TOKENIZER_FILE, padding_of
from thrifty.data.source import SOURCES
from thrifty.errors import UserError


@SOURCES.register("pairs")
class PairSource(ImageSource):
    @dataclass(kw_only=True)
    class Config:
        pass  # the image shape, captions and vocabulary are in the folder's manifest

    unit = "pairs"
    run_files = (TOKENIZER_FILE,)

    def __init__(self, path: Path, split: str) -> None:
        super().__init__(path, split)
        tensors = load_split(self.path, split)
        for key in ("captions", "caption_lengths"):
            if key not in tensors:
                raise UserError(f"{self.path}: the {split} split has no {key}; prepare it again")
        self.captions, self.lengths = tensors["captions"], tensors["caption_lengths"]

    def batch(self, indices, seq_len: int) -> dict[str, Any]:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        out = super().batch(index.tolist(), seq_len)
        out["captions"] = self.captions[index]
        out["caption_padding"] = padding_of(self.lengths[index], self.captions.shape[1])
        return out

    def fit(self, model):
        """The image set's fit (patch stem sized to the images) with the caption tokenizer's
        vocabulary as ``model.vocab_size``."""
        model = super().fit(model)
        vocab = int(self.manifest["vocab_size"])
        if model.vocab_size not in (None, vocab):
            raise UserError(
                f"model.vocab_size={model.vocab_size} does not match the caption tokenizer of "
                f"{self.path} ({vocab} tokens)"
            )
        return replace(model, vocab_size=vocab)
