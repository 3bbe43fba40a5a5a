"""The ObscuraCoder datasets: plain code, plus obfuscation pairs or DOBF name maps, prepared.

ObscuraCoder (Paul et al. 2025, ``papers/obscuracoder.md``) mixes plain code with sequences that
pair a file with its obfuscated twin (``thrifty.data.obfuscate``), so that a causal LM learns to
translate between them; DOBF (Lachaux et al. 2021) asks for the name map instead. Three formats,
one on-disk layout (``thrifty prepare``'s, written by ``prepare.write_tokenized``):

- ``plain``: every training file, whole, one document each;
- ``grounded``: the same documents plus pair sequences ``obf <sep> orig`` and ``orig <sep> obf``
  (a seeded coin per pair: the card's bidirectional grounding), loss on every token;
- ``dobf``: the same documents plus ``obf <sep> v1 name1 f1 name2 ...`` (the map of the names in
  the piece), loss only after ``<sep>`` (objective ``dobf``).

``<sep>`` is ``SEP_ID`` put between the two halves' token ids (the tokenizer reads a literal
"<sep>" as text). A pair is one *unit*: a run of whole lines of a training file, in both forms
(the twin keeps every line, so line k of one is line k of the other), cut so that ``<s>`` +
both halves + ``<sep>`` fit in half of ``seq_len`` tokens (whole-window units needed too much
padding). Units are placed so that none crosses a training window (windows start every
``seq_len`` tokens): a unit waits for a gap it fits, or the document before it is padded with
``<pad>`` up to the window boundary. So a unit's two halves are always seen
together, and the ``dobf`` objective can tell from a window alone where each map starts. Train
with ``data.seq_len`` equal to ``--seq-len``. Pairs are added, seeded, until they hold ``ratio``
of the training tokens (``ratio`` 0.3: 70% plain code, 30% pairs, as on the card).

Validation is the held-out files as plain code in every format (``code_corpus.held_out``), so
the arms of a comparison are scored on the same text with the same tokenizer (``--tokenizer``
reuses one arm's; it is trained on the plain training files, so it is the same for all arms).

The ledger (``thrifty.data.budget``) charges each file's words once: the plain training files
and the held-out files. The halves of a pair are ``derived_words``: ``obfuscation`` (twins and
name maps) and ``pair copy`` (the original half, a verbatim copy); they are training words and
tokens the model sees, made from charged words by a fixed rule, so they are not charged.
Exposure: a line in a unit is seen three times in one pass over the training split (as plain
code, as the original half or name map, as the twin); counting the twin as a pass over the
file's words is conservative (its names are gone). So the dataset's ``max_epochs`` is the
BabyLM 10 divided by 3 when there are pairs: ``thrifty audit`` fails a run past 10 passes over
any word, and the loop warns when it plans one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from thrifty.data.budget import Ledger
from thrifty.data.code_corpus import CodeFile, corpus_name, corpus_root, held_out, read_corpus
from thrifty.data.corpus import count_words
from thrifty.data.provenance import TextDigest, reused_tokenizer, trained_record
from thrifty.data.tokenizer import MIN_VOCAB, PAD_ID, SEP_ID, train_tokenizer
from thrifty.errors import UserError

FORMATS = ("plain", "grounded", "dobf")
VIEWS_WITH_PAIRS = 3  # plain, original half (or name map), twin: passes per pass over the split
_MAX_EPOCHS = 10  # the BabyLM rule
_WAITING = 16


@dataclass(frozen=True)
class Unit:
    """A run of whole lines of one file in both forms, with the names renamed in it."""

    path: str
    first: int  # 0-based index of the first line
    stop: int  # one past the last line
    orig: list[int]  # token ids of the original lines
    obf: list[int]  # token ids of the twin's lines (blank lines dropped)
    names: tuple[tuple[str, str], ...]  # (placeholder, original) by first use in the piece
    orig_text: str
    obf_text: str
    first_use: tuple[int, ...] = ()  # character offset in orig_text of each name's first use

    @property
    def map_text(self) -> str:
        """The DOBF target: ``v1 name1 f1 name2 ...``."""
        return " ".join(f"{ph} {name}" for ph, name in self.names)


def units(file: CodeFile, tok: Tokenizer, seq_len: int) -> tuple[list[Unit], int]:
    """The file cut into units that fit ``seq_len`` as a pair; and the lines left out (a line
    too long for any window)."""
    budget = seq_len // 2 - 2  # <s> and <sep>; half a window, so that units pack with little pad
    orig_lines = file.text.splitlines(keepends=True)
    obf_lines = file.twin.text.splitlines(keepends=True)
    per_line = [
        len(a.ids) + len(b.ids)
        for a, b in zip(tok.encode_batch(orig_lines), tok.encode_batch(obf_lines), strict=True)
    ]
    found, dropped, i = [], 0, 0
    while i < len(orig_lines):
        j, total = i, 0
        while j < len(orig_lines) and total + per_line[j] <= budget:
            total += per_line[j]
            j += 1
        unit = None
        while j > i:  # lines tokenize a little differently together: check, shrink
            unit = _unit(file, tok, orig_lines, obf_lines, i, j)
            if len(unit.orig) + len(unit.obf) <= budget:
                break
            j, unit = j - max(1, (j - i) // 4), None
        if unit is None:
            dropped, i = dropped + 1, i + 1
            continue
        if unit.orig_text.strip():
            found.append(unit)
        i = j
    return found, dropped


def _unit(file: CodeFile, tok: Tokenizer, orig: list[str], obf: list[str], i: int, j: int) -> Unit:
    orig_text = "".join(orig[i:j])
    obf_text = "".join(line for line in obf[i:j] if line.strip())
    names: dict[str, tuple[str, int]] = {}
    inverse = file.twin.inverse
    starts = [0]
    for line in orig[i:j]:
        starts.append(starts[-1] + len(line))
    for r in file.twin.renames:  # in order of position
        if i < r.line <= j and inverse[r.name] not in names:
            line = orig[r.line - 1]
            at = starts[r.line - 1 - i] + len(line.encode("utf-8")[: r.start].decode("utf-8"))
            names[inverse[r.name]] = (r.name, at)
    a, b = tok.encode_batch([orig_text, obf_text], add_special_tokens=False)
    pairs = tuple((ph, name) for ph, (name, _) in names.items())
    first_use = tuple(at for _, at in names.values())
    return Unit(file.path, i, j, a.ids, b.ids, pairs, orig_text, obf_text, first_use)


def unit_ids(unit: Unit, fmt: str, tok: Tokenizer, reverse: bool = False) -> list[int]:
    """A unit's training document (without the ``<s>`` the writer adds): ``obf <sep> orig``
    (``orig <sep> obf`` when ``reverse``) for ``grounded``, ``obf <sep> map`` for ``dobf``."""
    if fmt == "dobf":
        return [*unit.obf, SEP_ID, *tok.encode(unit.map_text, add_special_tokens=False).ids]
    first, second = (unit.orig, unit.obf) if reverse else (unit.obf, unit.orig)
    return [*first, SEP_ID, *second]


def check_task(fmt: str, ratio: float, seq_len: int, valid_fraction: float) -> None:
    """UserError for settings that define no dataset, naming the option."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if not 0 <= ratio < 1:
        raise UserError(f"--ratio {ratio}: must be in [0, 1)")
    if fmt != "plain" and ratio == 0:
        raise UserError(f"--ratio 0 with --format {fmt}: no pairs; use --format plain")
    if seq_len < 16:
        raise UserError(f"--seq-len {seq_len}: must be at least 16")
    if not 0 < valid_fraction < 1:
        raise UserError(f"--valid-fraction {valid_fraction}: must be in (0, 1)")


def prepare_code(
    corpus: str | Path,
    out: Path,
    *,
    fmt: str = "plain",
    ratio: float = 0.3,
    seq_len: int = 128,
    budget_words: int | None = None,
    valid_fraction: float = 0.05,
    seed: int = 0,
    vocab_size: int = 8192,
    tokenizer_path: Path | None = None,
    strip_docstrings: bool = True,
    strip_comments: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Prepare the Python files under ``corpus`` (module docstring); returns the manifest."""
    from thrifty.data.prepare import write_tokenized

    ratio = 0.0 if fmt == "plain" else ratio
    check_task(fmt, ratio, seq_len, valid_fraction)
    if vocab_size < MIN_VOCAB:
        raise UserError(f"--vocab-size {vocab_size}: must be at least {MIN_VOCAB}")
    if budget_words is not None and budget_words < 1:
        raise UserError(f"--budget-words {budget_words}: must be positive")
    reused = reused_tokenizer(tokenizer_path, None) if tokenizer_path is not None else None
    root = corpus_root(corpus)
    files, skipped = read_corpus(root, budget_words=budget_words, seed=seed,
                                 strip_docstrings=strip_docstrings,
                                 strip_comments=strip_comments)  # fmt: skip
    valid = [f for f in files if held_out(f.path, seed, valid_fraction)]
    train = [f for f in files if not held_out(f.path, seed, valid_fraction)]
    if not valid or not train:
        raise UserError(
            f"{root}: {len(files)} usable file(s) leave no "
            f"{'held-out' if not valid else 'training'} file; raise --budget-words or change "
            "--valid-fraction"
        )
    texts = [f.text for f in train]
    digest = TextDigest()
    for text in texts:
        digest.add(text)
    if reused is None:
        tok = train_tokenizer(iter(texts), vocab_size, length=len(texts))
        sources = [{"path": f.path, "sha256": f.sha256, "words": f.words} for f in train]
        record = trained_record(tok, sum(f.words for f in train), sources, digest.hexdigest())
    else:
        tok, record = reused
    stream, stats = _train_stream(train, tok, fmt, ratio, seq_len, seed)
    docs = [("train", ids) for ids in stream]
    docs += [("valid", e.ids) for e in tok.encode_batch([f.text for f in valid])]
    ledger = _ledger(files, budget_words, seed, record, digest.hexdigest(), stats)
    ledger.details |= {"corpus": corpus_name(root), "format": fmt, "skipped files": len(skipped)}
    words = {"train": stats["words"]["plain"] + stats["words"]["derived"],
             "valid": sum(f.words for f in valid)}  # fmt: skip
    extra = {"code_task": {
        "format": fmt, "ratio": ratio, "seq_len": seq_len, "seed": seed,
        "corpus": corpus_name(root), "root": str(root), "valid_fraction": valid_fraction,
        "strip_docstrings": strip_docstrings, "strip_comments": strip_comments,
        "files": {"train": len(train), "valid": len(valid)},
        "valid_files": [{"path": f.path, "sha256": f.sha256} for f in valid],
        "skipped": skipped, **{k: v for k, v in stats.items() if k != "words"},
    }}  # fmt: skip
    settings = {"valid_fraction": valid_fraction, "seq_len": seq_len, "format": fmt}
    return write_tokenized(out, tok, docs, ledger=ledger, words=words, settings=settings,
                           extra=extra, overwrite=overwrite)  # fmt: skip


def _train_stream(
    train: list[CodeFile], tok: Tokenizer, fmt: str, ratio: float, seq_len: int, seed: int
) -> tuple[list[list[int]], dict[str, Any]]:
    """The training documents in order, padded so no unit crosses a window; and counts."""
    rng = np.random.default_rng([seed, 1])
    plain = [e.ids for e in tok.encode_batch([f.text for f in train])]
    plain_tokens = sum(1 + len(ids) for ids in plain)
    words = {"plain": sum(f.words for f in train), "derived": 0, "obfuscation": 0, "pair copy": 0}
    items: list[tuple[bool, list[int]]] = [(False, ids) for ids in plain]
    made = dropped = 0
    if ratio > 0:
        pool = []
        for f in train:
            found, lost = units(f, tok, seq_len)
            pool += found
            dropped += lost
        made = len(pool)
        target, pair_tokens = ratio / (1 - ratio) * plain_tokens, 0
        for k in rng.permutation(len(pool)):
            if pair_tokens >= target:
                break
            unit, reverse = pool[k], bool(rng.integers(2))
            ids = unit_ids(unit, fmt, tok, reverse)
            if len(ids) >= seq_len:  # a name map longer than the original it replaces
                continue
            items.append((True, ids))
            pair_tokens += 1 + len(ids)
            second = unit.map_text if fmt == "dobf" else unit.orig_text
            words["obfuscation"] += count_words(unit.obf_text)
            words["obfuscation" if fmt == "dobf" else "pair copy"] += count_words(second)
        words["derived"] = words["obfuscation"] + words["pair copy"]
    stream, pad = _pack([items[k] for k in rng.permutation(len(items))], seq_len)
    at = sum(1 + len(ids) for ids in stream)
    paired = len(items) - len(plain)
    tokens = {"plain": plain_tokens, "pairs": at - plain_tokens - pad, "pad": pad}
    units_ = {"made": made, "paired": paired, "lines_too_long": dropped}
    return stream, {"tokens": tokens, "units": units_, "words": words}


def _pack(items: list[tuple[bool, list[int]]], seq_len: int) -> tuple[list[list[int]], int]:
    """The documents in about the given order with no unit across a window boundary; units
    wait (up to ``_WAITING``) for a gap they fit before the document before them is padded."""
    stream: list[list[int]] = []
    waiting: list[list[int]] = []
    at = pad = 0

    def fits(ids: list[int]) -> bool:
        return at // seq_len == (at + len(ids)) // seq_len  # <s> + ids end in this window

    def place(ids: list[int]) -> None:
        nonlocal at
        stream.append(ids)
        at += 1 + len(ids)

    def flush(limit: int) -> None:
        nonlocal at, pad
        while waiting:
            fit = next((i for i, ids in enumerate(waiting) if fits(ids)), None)
            if fit is not None:
                place(waiting.pop(fit))
            elif len(waiting) > limit:
                gap = seq_len - at % seq_len  # pad the document before up to the boundary
                stream[-1] = [*stream[-1], *[PAD_ID] * gap]
                at, pad = at + gap, pad + gap
            else:
                return

    for is_unit, ids in items:
        if is_unit and len(ids) >= seq_len:
            raise ValueError(f"a unit of {1 + len(ids)} tokens cannot fit a window of {seq_len}")
        if is_unit:
            waiting.append(ids)
        else:
            place(ids)
        flush(_WAITING)
    flush(0)
    return stream, pad


def _ledger(
    files: list[CodeFile],
    budget_words: int | None,
    seed: int,
    tokenizer: dict[str, Any],
    text_sha256: str,
    stats: dict[str, Any],
) -> Ledger:
    ledger = Ledger(
        budget_words=budget_words,
        selection="all" if budget_words is None else "sample",
        seed=seed,
    )
    ledger.sources = [
        {"path": f.path, "sha256": f.sha256, "words_total": f.words, "words_used": f.words}
        for f in files
    ]
    ledger.tokenizer = tokenizer
    ledger.texts = [text_sha256]  # the plain training files, every word charged
    words = stats["words"]
    ledger.derived_words = {k: words[k] for k in ("obfuscation", "pair copy") if words[k]}
    if stats["units"]["paired"]:
        ledger.max_epochs = _MAX_EPOCHS / VIEWS_WITH_PAIRS
        ledger.details["passes per epoch"] = (
            f"{VIEWS_WITH_PAIRS} for lines in a pair (plain, original or name map, twin): "
            f"max_epochs {_MAX_EPOCHS} / {VIEWS_WITH_PAIRS}"
        )
    return ledger
