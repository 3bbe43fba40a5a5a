"""Key-value recall in a haystack, written as text and prepared as a dataset: the meta-tokens
check (``papers/meta_tokens.md``; multi-query associative recall, Arora et al. 2023, with
filler as in passkey retrieval, Mohtashami & Jaggi 2023).

A sequence scatters ``pairs`` pairs ``key value`` (distinct keys) among filler words, then
``|``, then ``queries`` of its keys again, each followed by its value. Only the values after
``|`` can be predicted, and only by looking back; pairs and filler are random. Keys are
two-letter words (``aa`` ..), values the numbers 10 .. 99, filler three-letter words
(``bab`` ..), so the three never mix. A longer sequence holds the same number of pairs in more
filler: the keys sit further back, at positions training never reached.

Every word is one token: byte-level BPE with room to spare merges each pre-token (``" ka"``,
``" 42"``, ``" |"``) whole, so a sequence of ``length`` tokens (its ``<s>`` included) has
``length - 2 - 2 * (pairs + queries)`` filler words (at least one: a sequence starts with
one). Training sequences are ``train_len`` tokens, the window length of the runs that read
them, so each training window is one sequence (windows are ``seq_len + 1`` tokens with
stride ``seq_len``: the extra token is the next ``<s>``). Test sequences of each test length
are written beside the dataset folder (``<out>.recall_<length>.txt``), drawn from their own
seeded stream; ``thrifty.eval.long_context`` scores them.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError

KEYS = tuple(a + b for a in string.ascii_lowercase for b in string.ascii_lowercase)
VALUES = tuple(str(v) for v in range(10, 100))
FILLER = tuple(a + b + a for a in "bdfgklmnprstvz" for b in "aeiou")
SEPARATOR = "|"


@dataclass(frozen=True)
class RecallSequence:
    context: tuple[str, ...]
    """The words before ``|``: filler with the pairs ``key value`` scattered in it."""
    queries: tuple[tuple[str, str], ...]

    @property
    def text(self) -> str:
        asked = " ".join(f"{k} {v}" for k, v in self.queries)
        return f"{' '.join(self.context)} {SEPARATOR} {asked}"


def filler_for(length: int, pairs: int, queries: int) -> int:
    """Filler words in a sequence of ``length`` tokens (``<s>`` included)."""
    return length - 2 - 2 * (pairs + queries)


@dataclass(frozen=True)
class Vocabulary:
    """How many keys, values and filler words sequences draw from (the first of each list)."""

    keys: int = len(KEYS)
    values: int = len(VALUES)
    filler: int = len(FILLER)

    def check(self) -> None:
        for name, n, most in (
            ("keys", self.keys, len(KEYS)),
            ("values", self.values, len(VALUES)),
            ("filler", self.filler, len(FILLER)),
        ):
            if not 1 <= n <= most:
                raise UserError(f"{name}={n}: must be in [1, {most}]")


def check_lengths(
    lengths: Sequence[int], pairs: int, queries: int, vocab: Vocabulary = Vocabulary()
) -> None:
    """UserError for settings that hold no task."""
    vocab.check()
    if not 1 <= queries <= pairs <= vocab.keys:
        raise UserError(
            f"pairs={pairs}, queries={queries}: need 1 <= queries <= pairs <= keys={vocab.keys}"
        )
    for length in lengths:
        if filler_for(length, pairs, queries) < 1:
            raise UserError(f"length {length}: too short for {pairs} pairs and {queries} queries")


def sample_sequence(
    rng: random.Random, length: int, pairs: int, queries: int, vocab: Vocabulary = Vocabulary()
) -> RecallSequence:
    values, filler = VALUES[: vocab.values], FILLER[: vocab.filler]
    table = {k: rng.choice(values) for k in rng.sample(KEYS[: vocab.keys], pairs)}
    is_pair = [True] * pairs + [False] * (filler_for(length, pairs, queries) - 1)
    rng.shuffle(is_pair)  # where the pairs sit among the filler
    # a filler word first: the first word has no space before it, so a key there would be
    # another token than the same key queried later
    is_pair.insert(0, False)
    items = iter(table.items())
    context = [w for pair in is_pair for w in (next(items) if pair else (rng.choice(filler),))]
    asked = tuple((k, table[k]) for k in rng.sample(list(table), queries))
    return RecallSequence(tuple(context), asked)


def parse_sequence(text: str, where: str) -> RecallSequence:
    """The sequence a line of a recall file holds; a UserError naming ``where`` otherwise."""
    listed, sep, asked = text.strip().partition(f" {SEPARATOR} ")
    context, queried = listed.split(), asked.split()
    if not sep or len(queried) % 2 or not queried:
        raise UserError(f"{where}: not a recall sequence '... k v ... | k v ...'")
    table = dict(zip(context, context[1:]))
    for k, v in zip(queried[::2], queried[1::2]):
        if k not in KEYS or table.get(k) != v:
            raise UserError(f"{where}: query {k} {v} does not match a pair before '|'")
    return RecallSequence(tuple(context), tuple(zip(queried[::2], queried[1::2])))


def recall_file(out: Path, length: int) -> Path:
    """The test file of ``length`` beside the dataset folder ``out``."""
    out = Path(out)
    return out.with_name(f"{out.name}.recall_{length}.txt")


def write_sequences(
    path: Path, rng: random.Random, n: int, length: int, pairs: int, queries: int, vocab: Vocabulary
) -> None:
    lines = [sample_sequence(rng, length, pairs, queries, vocab).text for _ in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")


def prepare_recall(
    out: Path,
    *,
    train_len: int = 128,
    test_lens: Sequence[int] = (128, 256, 512),
    examples: int = 4000,
    test_examples: int = 200,
    pairs: int = 8,
    queries: int = 8,
    vocab: Vocabulary = Vocabulary(),
    valid_fraction: float = 0.05,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write ``examples`` training sequences of ``train_len`` tokens and ``test_examples`` per test
    length, and prepare the training ones into ``out``. Returns the manifest."""
    from thrifty.data.prepare import prepare  # tokenizers and numpy load here, not at import
    from thrifty.data.tokenizer import MIN_VOCAB

    check_lengths([train_len, *test_lens], pairs, queries, vocab)
    if examples < 2:
        raise UserError(f"examples={examples}: need at least 2 (one to hold out)")
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not empty; pass overwrite (--overwrite)")
    source = out.with_name(f"{out.name}.recall_train.txt")
    written = [source, *(recall_file(out, n) for n in test_lens)]
    existed = {p for p in written if p.exists()}
    try:
        write_sequences(source, random.Random(seed), examples, train_len, pairs, queries, vocab)
        for i, length in enumerate(test_lens):  # a stream of its own per test length
            rng = random.Random(f"{seed}/test/{i}/{length}")
            write_sequences(
                recall_file(out, length), rng, test_examples, length, pairs, queries, vocab
            )
        return prepare(
            [source],
            out,
            budget_words=None,
            seed=seed,
            vocab_size=MIN_VOCAB + 4 * (len(KEYS) + len(VALUES) + len(FILLER)),  # to spare
            valid_fraction=valid_fraction,
            overwrite=overwrite,
            progress=progress,
        )
    except BaseException:
        for path in written:
            if path not in existed:
                path.unlink(missing_ok=True)  # a failed preparation leaves nothing behind
        raise
