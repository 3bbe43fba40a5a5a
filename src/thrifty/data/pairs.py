"""Image–caption pairs -> a prepared pairs dataset folder (``modality: pairs``), for CLIP
(Radford et al. 2021; ``thrifty.objectives.clip``).

Source ``digits``: scikit-learn's 1,797 handwritten digits (``thrifty.data.images``), split by
class exactly as ``images:digits`` is, each with a caption of its label in one of
``TEMPLATES`` ("a handwritten seven", "the digit seven", "a photo of the number 7", ...),
the template drawn per image from ``seed``. Captions are tokenized by a word-level tokenizer
(Hugging Face ``tokenizers``, ``WordLevel``) trained on the training captions only, with
thrifty's special tokens at their fixed ids plus ``<unk>``; a caption is its words then
``</s>`` (CLIP reads the text feature at this end-of-text token), right-padded with ``<pad>``.

Per split, ``{split}.safetensors`` holds ``images`` (N, 1, 8, 8) uint8, ``labels`` (N,),
``captions`` (N, L) int64, ``caption_lengths`` (N,) and ``templates`` (N,) (the template
index); beside them ``tokenizer.json`` and ``manifest.json`` (templates, class names, caption
length, the ledger in pairs). The tokenizer's training words are the training pairs' captions,
so they are charged with those pairs (its record in the ledger says so, as a text tokenizer
trained on its prepared split).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.atomic import new_folder
from thrifty.data.budget import Ledger
from thrifty.data.images import (
    IMAGE_MAX_EPOCHS,
    check_fractions,
    keep_budget,
    load_digits_source,
    stratified_splits,
)
from thrifty.data.provenance import trained_record
from thrifty.data.tokenizer import EOS_ID, PAD_ID, SPECIAL_TOKENS, check_special_tokens
from thrifty.data.tokens import FORMAT, MANIFEST_FILE
from thrifty.errors import UserError

# {name}: the class name ("seven"); {digit}: its numeral ("7"). Several phrasings, so the
# text tower must learn that "seven" and "7" name the same images (CLIP's prompt ensembles).
TEMPLATES = (
    "a handwritten {name}",
    "the digit {name}",
    "a photo of the number {digit}",
    "a drawing of a {name}",
)
UNK = "<unk>"
TOKENIZER_FILE = "tokenizer.json"


def caption(template: str, label: int, classes: list[str]) -> str:
    """The caption of class ``label`` in ``template``."""
    return template.format(name=classes[label], digit=str(label))


def train_word_tokenizer(texts: list[str]):
    """A lowercase word-level tokenizer of ``texts`` with thrifty's specials at ids 0..5."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=[*SPECIAL_TOKENS, UNK], show_progress=False)
    tok.train_from_iterator(texts, trainer, length=len(texts))
    check_special_tokens(tok, "caption tokenizer")
    tok.encode_special_tokens = True  # a literal "<mask>" in a caption stays a word
    return tok


def encode_captions(tok, texts: list[str], length: int | None = None):
    """(ids (N, L) int64 right-padded, lengths (N,)): each text's words then ``</s>``; L is
    the longest caption, or ``length`` (a UserError when a caption does not fit)."""
    rows = [tok.encode(t).ids + [EOS_ID] for t in texts]
    longest = max(len(r) for r in rows)
    length = longest if length is None else length
    if longest > length:
        raise UserError(f"a caption of {longest} tokens exceeds the {length} the model reads")
    ids = np.full((len(rows), length), PAD_ID, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return ids, np.array([len(r) for r in rows], dtype=np.int64)


def prepare_pairs(
    source: str,
    out: str | Path,
    *,
    budget_pairs: int | None = None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the prepared pairs of ``source`` (``digits``) to ``out``; return the manifest."""
    from safetensors.numpy import save_file

    out = Path(out)
    if source != "digits":
        raise UserError(f"pairs:{source}: unknown pairs source; known: pairs:digits")
    check_fractions(valid_fraction, test_fraction, "pairs")
    if out.exists() and (out / MANIFEST_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a prepared dataset is already here; pass --overwrite")
    images, labels, classes, row = load_digits_source()
    splits = stratified_splits(labels, valid_fraction, test_fraction, seed)  # as images:digits
    keep_budget(splits, budget_pairs, "pairs")
    # a stream of its own, so the splits stay those of images:digits with the same seed
    template = np.random.default_rng([seed, 1]).integers(0, len(TEMPLATES), len(labels))
    texts = [caption(TEMPLATES[t], int(y), classes) for t, y in zip(template, labels)]
    train_texts = [texts[i] for i in splits["train"]]
    tok = train_word_tokenizer(train_texts)
    ids, lengths = encode_captions(tok, texts)
    joined = "\n".join(train_texts).encode("utf-8")
    words = sum(len(t.split()) for t in train_texts)
    text_sha = hashlib.sha256(joined).hexdigest()
    text_row = {"path": "captions of the training pairs", "sha256": text_sha, "words": words}
    counts = {s: int(len(i)) for s, i in splits.items()}
    ledger = Ledger(
        budget_words=budget_pairs,
        selection="all" if budget_pairs is None else "sample",
        seed=seed,
        sources=[row | {"words_used": counts["train"] + counts["valid"] + counts["test"]}],
        prepared_words={"train": counts["train"], "valid": counts["valid"]},
        tokenizer=trained_record(tok, words, [text_row], text_sha),
        texts=[text_sha],
        unit="pairs",
        max_epochs=IMAGE_MAX_EPOCHS,
    )
    manifest = {
        "format": FORMAT,
        "modality": "pairs",
        "image_shape": list(images.shape[1:]),
        "classes": classes,
        "templates": list(TEMPLATES),
        "caption_len": int(ids.shape[1]),
        "vocab_size": tok.get_vocab_size(),
        "counts": counts,
        "settings": {"valid_fraction": valid_fraction, "test_fraction": test_fraction},
        "ledger": ledger.to_dict(),
    }
    with new_folder(out) as tmp:
        for split, index in splits.items():
            tensors = {
                "images": np.ascontiguousarray(images[index]),
                "labels": labels[index],
                "captions": ids[index],
                "caption_lengths": lengths[index],
                "templates": template[index].astype(np.int64),
            }
            save_file(tensors, str(tmp / f"{split}.safetensors"))
        tok.save(str(tmp / TOKENIZER_FILE))
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def class_prompts(manifest: dict[str, Any]) -> list[list[str]]:
    """Per class, its caption in every template of the set (zero-shot's prompt ensemble)."""
    classes = manifest["classes"]
    return [[caption(t, c, classes) for t in manifest["templates"]] for c in range(len(classes))]


def padding_of(lengths: torch.Tensor, length: int) -> torch.Tensor:
    """(N, L) bool, True at the real tokens of right-padded captions."""
    return torch.arange(length)[None, :] < lengths[:, None]
