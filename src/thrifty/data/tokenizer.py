"""Train and load thrifty's tokenizer: a Hugging Face ``tokenizers`` byte-level BPE.

Byte-level BPE (GPT-2, Radford et al. 2019) starts from all 256 bytes, so every string encodes
and no ``<unk>`` is needed. The six special tokens have fixed ids so that models, objectives
and exports agree without looking them up. No post-processor adds BOS: ``prepare`` and the
scorers prepend ``BOS_ID`` themselves, where they mean to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from thrifty.errors import UserError

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<mask>", "<cls>", "<sep>")
PAD_ID, BOS_ID, EOS_ID, MASK_ID, CLS_ID, SEP_ID = range(len(SPECIAL_TOKENS))
NUM_SPECIAL = len(SPECIAL_TOKENS)
SPECIAL_IDS: dict[str, int] = {
    "pad": PAD_ID,
    "bos": BOS_ID,
    "eos": EOS_ID,
    "mask": MASK_ID,
    "cls": CLS_ID,
    "sep": SEP_ID,
}
MIN_VOCAB = NUM_SPECIAL + 256  # the specials plus the byte alphabet
# The meta-token <m> of meta-token training (thrifty.objectives.meta_tokens) is <cls>: a
# learnable id every thrifty tokenizer has and a causal LM never otherwise reads, so a
# meta-token model keeps its tokenizer and vocabulary.
META_ID = CLS_ID


def _safe(tok: Tokenizer) -> Tokenizer:
    # A literal "<mask>" in the corpus must stay text, not become MASK_ID. This flag is not
    # saved in tokenizer.json, so every thrifty entry point sets it.
    tok.encode_special_tokens = True
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int, length: int | None = None) -> Tokenizer:
    """Train a byte-level BPE with ``SPECIAL_TOKENS`` at ids 0..5 on ``texts``.

    The result may have fewer than ``vocab_size`` entries when the text is small.
    ``length`` (the number of texts, when known) only feeds the trainer's bookkeeping.
    """
    if vocab_size < MIN_VOCAB:
        raise UserError(
            f"vocab_size {vocab_size} is too small: byte-level BPE needs at least {MIN_VOCAB} "
            f"({NUM_SPECIAL} special tokens + 256 bytes)"
        )
    tok = Tokenizer(models.BPE())
    # No prefix space: decode(encode(text)) == text, as in GPT-2.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer, length=length)
    check_special_tokens(tok, "trained tokenizer")
    return _safe(tok)


def check_special_tokens(tok: Tokenizer, where: str) -> None:
    """UserError unless every special token has thrifty's fixed id."""
    for expected, token in enumerate(SPECIAL_TOKENS):
        found = tok.token_to_id(token)
        if found != expected:
            raise UserError(f"{where}: token {token!r} has id {found}, thrifty needs {expected}")


def load_tokenizer(path: Path) -> Tokenizer:
    """Load ``tokenizer.json`` (or the one inside a folder) and check its special tokens."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise UserError(f"{path}: no tokenizer file here")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        raise UserError(f"{path}: not a Hugging Face tokenizer ({e})") from None
    check_special_tokens(tok, str(path))
    return _safe(tok)


def tokenizer_sha256(tok: Tokenizer) -> str:
    """Fingerprint of the tokenizer: sha256 of its JSON with sorted keys and no spacing."""
    canonical = json.dumps(json.loads(tok.to_str()), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
