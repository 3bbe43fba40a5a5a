"""Sequence log-probabilities for zero-shot evaluation: causal, masked PLL and GPT-BERT's MNTP.

Every scorer returns, per sentence, the *sum* of natural-log token probabilities (BabyLM's
minimal-pair protocol, `papers/babylm_challenge.md` §4), with ``<s>`` prepended so that the
first word is scored too:

- ``causal``: Σ_t log p(w_t | <s> w_<t), as one causal forward per sentence would give it.
- ``mlm``: pseudo-log-likelihood (Salazar et al. 2020). One copy per token with that token
  replaced by ``<mask>``; bidirectional attention; read position t. ``<s>`` plays BERT's [CLS]
  and is never masked. Variant ``within_word_l2r`` (Kauf & Ivanova 2023) also masks the later
  sub-tokens of the same whitespace-separated word.
- ``mntp``: like ``mlm`` but the prediction for the token masked at t is read at position t−1
  (Charpentier & Samuel 2024, GPT-BERT §7), so ``<s>`` at 0 predicts the first word.

Speed and memory (``max_batch_tokens``, the cap): no forward pass holds more than ``cap``
token positions (rows x padded width; only a single sequence longer than the cap runs alone),
and the LM head runs on at most ``HEAD_CHUNK_ELEMS`` logits at once (``CPU_HEAD_CHUNK_ELEMS``
on CPU).

- ``causal``: sequences are sorted and merged into prefix trees, so a prefix shared by several
  sentences (minimal pairs, template-built paradigms, entity-tracking options after one prompt)
  is computed once (:mod:`thrifty.eval.prefix_tree`); tries are packed under the cap.
- ``mlm`` / ``mntp``: the masked copies of *many* sentences share each forward pass: copies are
  jobs (sentence, position), sorted by sentence length and cut into batches under the cap, so
  batches are nearly pad-free; each batch's copies are built with numpy indexing when it runs
  (never all at once). The first block's q/k/v projection runs once per sentence of a batch,
  the last block and the LM head only at the read position of each copy
  (:mod:`thrifty.eval.readout`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch

from thrifty.data.tokenizer import BOS_ID, MASK_ID
from thrifty.errors import UserError
from thrifty.eval.prefix_tree import body_nodes, build_tries, score_tries
from thrifty.eval.readout import hidden_at
from thrifty.models.transformer import Transformer

BACKENDS = ("causal", "mlm", "mntp")
VARIANTS = ("original", "within_word_l2r")
# Tokens per forward pass. On CPU small batches stay in cache: on two cores the mini model scored
# 1.5-2x more sentences/s at 1-4k tokens than at 16k. GPUs want large batches.
CPU_BATCH_TOKENS = 2048
GPU_BATCH_TOKENS = 65536
HEAD_CHUNK_ELEMS = 1 << 24  # logits materialised at once (64 MiB in fp32)
# On CPU the head's chunk stays in cache: logits of ~128 rows x 8k (4 MiB) made the head's
# matmul and log-softmax together 1.1-1.4x faster on two cores than 2k-row chunks (64 MiB).
CPU_HEAD_CHUNK_ELEMS = 1 << 20
_WORD = re.compile(r"\S+")


def head_rows(vocab_size: int, device: torch.device) -> int:
    """Rows of hidden states whose logits are materialised at once, for scoring on ``device``."""
    elems = CPU_HEAD_CHUNK_ELEMS if device.type == "cpu" else HEAD_CHUNK_ELEMS
    return max(1, elems // vocab_size)


@dataclass
class Packed:
    """Many token sequences in one flat array, each starting with ``<s>``."""

    flat: np.ndarray  # (sum of lengths,) int64
    starts: np.ndarray  # (N,) offset of each sequence in ``flat``
    lengths: np.ndarray  # (N,) tokens including <s>
    first: np.ndarray  # (N,) first scored position (1 = everything after <s>)
    words: np.ndarray | None = None  # (sum of lengths,) word index per token, -1 for <s>


def _word_index(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """Whitespace-word index of each token: a token belongs to the word its start falls in, or
    to the next word when it starts on a space (byte-level BPE's 'Ġ' opens a word)."""
    ends = [m.end() for m in _WORD.finditer(text)]
    return [bisect.bisect_right(ends, start) for start, _ in offsets]


def encode(
    tokenizer, texts: Sequence[str], contexts: Sequence[str] | None = None, words: bool = False
) -> Packed:
    """Tokenize ``texts`` (after optional ``contexts``) into a :class:`Packed` batch."""
    encs = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    ctx = tokenizer.encode_batch(list(contexts), add_special_tokens=False) if contexts else None
    n_ctx = np.array([len(e.ids) for e in ctx] if ctx else [0] * len(encs), dtype=np.int64)
    lengths = 1 + n_ctx + np.array([len(e.ids) for e in encs], dtype=np.int64)
    seqs = (chain((BOS_ID,), ctx[i].ids if ctx else (), e.ids) for i, e in enumerate(encs))
    flat = np.fromiter(chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    word_ids = None
    if words:
        rows = []
        for i, e in enumerate(encs):
            row = [-1]
            if ctx:
                row += _word_index(contexts[i], ctx[i].offsets)
            shift = len(_WORD.findall(contexts[i])) + 1 if ctx else 0  # context words come first
            rows.append(row + [w + shift for w in _word_index(texts[i], e.offsets)])
        word_ids = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(flat))
    return Packed(flat, starts, lengths, 1 + n_ctx, word_ids)


def _batches(seq_len: np.ndarray, cap: int) -> Iterator[slice]:
    """Greedy slices of jobs (sorted by nondecreasing ``seq_len``) with count × max_len ≤ cap."""
    n, a = len(seq_len), 0
    while a < n:
        ends = np.arange(a + 1, min(n, a + max(1, cap // int(seq_len[a]))) + 1)
        cost = (ends - a) * seq_len[ends - 1]  # nondecreasing, so binary search works
        b = a + max(1, int(np.searchsorted(cost, cap, side="right")))
        yield slice(a, b)
        a = b


def _rows(packed: Packed, seqs: np.ndarray, width: int, source: np.ndarray | None = None):
    """(B, width) right-padded rows of ``source`` (default: ids) for sequences ``seqs``."""
    source = packed.flat if source is None else source
    idx = packed.starts[seqs, None] + np.arange(width)
    valid = np.arange(width) < packed.lengths[seqs, None]
    return np.where(valid, source[np.minimum(idx, len(source) - 1)], 0), valid


def _token_logprobs(
    model, hidden: torch.Tensor, targets: torch.Tensor, rows: np.ndarray | None = None
) -> torch.Tensor:
    """log p(targets[j]) for (M, C) hidden states, read at hidden[j], or at hidden[rows[j]]
    for ``rows`` in nondecreasing order (each row's log-softmax is then computed once for all
    the targets that read it). The head runs in chunks of rows to bound memory."""
    rows = np.arange(len(targets)) if rows is None else rows
    chunk = head_rows(model.cfg.vocab_size, hidden.device)
    out = hidden.new_empty(len(targets), dtype=torch.float32)
    starts = range(0, len(hidden), chunk)
    bounds = np.searchsorted(rows, [*starts, len(hidden)])  # the targets of each chunk of rows
    read = torch.from_numpy(rows).to(hidden.device)
    # A transformer's tied head writes every chunk's logits into one buffer, where they stay
    # in cache; other models (ensembles) give fresh logits. The log-softmax overwrites them.
    head = model.embed.weight if isinstance(model, Transformer) else None
    buffer = None if head is None else hidden.new_empty(min(chunk, len(hidden)), len(head))
    for i, s in enumerate(starts):
        a, b = int(bounds[i]), int(bounds[i + 1])
        h = hidden[s : s + chunk]
        logits = model.logits(h) if head is None else torch.mm(h, head.T, out=buffer[: len(h)])
        logits = logits.float()
        logp = torch.log_softmax(logits, -1, out=logits)
        out[a:b] = logp[read[a:b] - s, targets[a:b]]
    return out


def _causal(model, packed: Packed, cap: int, device: torch.device) -> np.ndarray:
    """Sum of next-token log-probs from position ``first``, shared prefixes computed once."""
    scores = np.zeros(len(packed.lengths))
    if not len(scores) or packed.lengths.max() < 2:
        return scores  # only <s>: nothing to score
    if not isinstance(model, Transformer):
        # Prefix trees need the transformer's internals (RoPE tables, blocks); wrappers that only
        # offer forward + logits (ensembles) are scored as plain length-sorted batches.
        return _causal_batched(model, packed, cap, device)
    seq_bytes = [packed.flat[a : a + n].tobytes() for a, n in zip(packed.starts, packed.lengths)]
    # Byte order is not integer order, but equal token prefixes are equal byte prefixes, so
    # sequences that share a prefix still end up next to each other.
    order = sorted(range(len(seq_bytes)), key=seq_bytes.__getitem__)
    tries = list(build_tries(packed.flat, packed.starts, packed.lengths, order, cap))
    sizes = np.array([_nodes(t) for t in tries])
    by_size = np.argsort(sizes, kind="stable")
    tries, sizes = [tries[i] for i in by_size], sizes[by_size]
    for part in _batches(sizes, cap):
        seqs, pos, logp = score_tries(model, tries[part], device, _token_logprobs)
        keep = pos >= packed.first[seqs]
        np.add.at(scores, seqs[keep], logp[keep])
    return scores


def _causal_batched(model, packed: Packed, cap: int, device: torch.device) -> np.ndarray:
    scores = np.zeros(len(packed.lengths))
    order = np.argsort(packed.lengths, kind="stable")
    for part in _batches(packed.lengths[order], cap):
        seqs = order[part]
        width = int(packed.lengths[seqs].max())
        ids, valid = _rows(packed, seqs, width)
        scored = valid[:, 1:] & (np.arange(1, width) >= packed.first[seqs, None])
        ids_t = torch.from_numpy(ids).to(device)
        hidden = model(ids_t[:, :-1], causal=True)  # right padding needs no mask
        sel = torch.from_numpy(scored).to(device)
        logp = _token_logprobs(model, hidden[sel], ids_t[:, 1:][sel])
        np.add.at(scores, seqs[np.nonzero(scored)[0]], logp.double().cpu().numpy())
    return scores


def _nodes(trie: tuple[np.ndarray, ...]) -> int:
    """Nodes of a trie that run through the blocks (its row of a batch)."""
    return int(body_nodes(trie[2]).sum())


def _masked(
    model, packed: Packed, cap: int, device: torch.device, shift: int, l2r: bool
) -> np.ndarray:
    """PLL with one masked copy per scored token; ``shift`` 0 reads at t (mlm), 1 at t−1."""
    scores = np.zeros(len(packed.lengths))
    order = np.argsort(packed.lengths, kind="stable")
    n_jobs = packed.lengths[order] - packed.first[order]
    job_seq = np.repeat(order, n_jobs)  # copies of one sentence stay together
    job_pos = np.arange(len(job_seq)) - np.repeat(np.cumsum(n_jobs) - n_jobs, n_jobs)
    job_pos += packed.first[job_seq]
    for part in _batches(packed.lengths[job_seq], cap):
        seqs, pos = job_seq[part], job_pos[part]
        width = int(packed.lengths[seqs].max())
        ids, valid = _rows(packed, seqs, width)
        r = np.arange(len(seqs))
        targets = ids[r, pos]
        if l2r:  # hide t and the rest of its word; earlier sub-tokens stay visible
            words, _ = _rows(packed, seqs, width, packed.words)
            masked = valid & (words == words[r, pos][:, None]) & (np.arange(width) >= pos[:, None])
            ids[masked] = MASK_ID
        else:
            ids[r, pos] = MASK_ID
        padding = None if valid.all() else torch.from_numpy(valid).to(device)
        read = torch.from_numpy(pos - shift).to(device)
        distinct, row_sentence = np.unique(seqs, return_inverse=True)
        sentences = torch.from_numpy(_rows(packed, distinct, width)[0]).to(device)
        source = (sentences, torch.from_numpy(row_sentence).to(device))
        h = hidden_at(model, torch.from_numpy(ids).to(device), padding, read, source)  # (B, C)
        logp = _token_logprobs(model, h, torch.from_numpy(targets).to(device))
        np.add.at(scores, seqs, logp.double().cpu().numpy())
    return scores


def score_packed(
    model,
    packed: Packed,
    backend: str,
    *,
    variant: str = "original",
    max_batch_tokens: int | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Summed log-probs (float64, input order) of already-tokenized sequences."""
    if backend not in BACKENDS:
        raise UserError(f"unknown scoring backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if variant not in VARIANTS:
        raise UserError(f"unknown scoring variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if variant != "original" and backend == "causal":
        raise UserError(f"variant {variant!r} applies to the mlm and mntp backends, not causal")
    if len(packed.lengths) and packed.lengths.max() > model.cfg.max_seq_len:
        i = int(packed.lengths.argmax())
        raise UserError(
            f"sequence {i} has {packed.lengths[i]} tokens with <s>, more than the model's "
            f"max_seq_len={model.cfg.max_seq_len}"
        )
    if device is not None:
        model.to(device)
    device = next(model.parameters()).device
    cap = max_batch_tokens or (CPU_BATCH_TOKENS if device.type == "cpu" else GPU_BATCH_TOKENS)
    was_training = model.training
    model.eval()  # scores must not depend on dropout or other training-time behaviour
    try:
        with torch.inference_mode():
            if backend == "causal":
                return _causal(model, packed, cap, device)
            shift = 1 if backend == "mntp" else 0
            return _masked(model, packed, cap, device, shift, variant != "original")
    finally:
        model.train(was_training)


def _check_lengths(model, packed: Packed, texts: Sequence[str]) -> None:
    """A UserError that quotes the text when a sequence does not fit the model."""
    limit = model.cfg.max_seq_len
    if len(packed.lengths) and packed.lengths.max() > limit:
        i = int(packed.lengths.argmax())
        text = texts[i] if len(texts[i]) <= 80 else texts[i][:77] + "..."
        raise UserError(
            f"{text!r} is {packed.lengths[i]} tokens with <s>, more than the model's "
            f"max_seq_len={limit}"
        )


def score_sentences(
    model,
    tokenizer,
    sentences: Sequence[str],
    backend: str,
    *,
    variant: str = "original",
    max_batch_tokens: int | None = None,
    device: str | torch.device | None = None,
) -> list[float]:
    """log p(sentence) as a sum of token log-probs (nats), one float per sentence, in order."""
    packed = encode(tokenizer, sentences, words=variant == "within_word_l2r")
    _check_lengths(model, packed, sentences)
    out = score_packed(
        model, packed, backend, variant=variant, max_batch_tokens=max_batch_tokens, device=device
    )
    return out.tolist()


def score_continuations(
    model,
    tokenizer,
    contexts: Sequence[str],
    continuations: Sequence[str],
    backend: str,
    *,
    variant: str = "original",
    max_batch_tokens: int | None = None,
    device: str | torch.device | None = None,
) -> list[float]:
    """log p(continuation | context), summed over the continuation's tokens only (EWoK-style).

    Context and continuation are tokenized separately and joined, so put the separating space at
    the start of the continuation (``"The cat", " sat."``).
    """
    if len(contexts) != len(continuations):
        raise UserError(f"{len(contexts)} contexts but {len(continuations)} continuations")
    packed = encode(tokenizer, continuations, contexts, words=variant == "within_word_l2r")
    _check_lengths(model, packed, [c + t for c, t in zip(contexts, continuations)])
    out = score_packed(
        model, packed, backend, variant=variant, max_batch_tokens=max_batch_tokens, device=device
    )
    return out.tolist()
