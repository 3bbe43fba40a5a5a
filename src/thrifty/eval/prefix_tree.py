"""Causal scoring over prefix trees: a prefix shared by several sequences is computed once.

Under causal attention the hidden state at position t depends only on tokens 0..t, so sequences
that share a prefix share its hidden states and its next-token log-probs. BLiMP's minimal pairs
and sentences built from the same templates share many prefixes (sorted, consecutive BLiMP
sentences form tries with about 2/3 of their tokens), and the five entity-tracking options share a
prompt of up to ~200 tokens. Sequences are sorted lexicographically and merged greedily into
tries of at most ``PACK_NODES`` nodes or twice the longest sequence (fewer under a smaller
cap); each trie is one row of a batch ("tree attention" as in SpecInfer, Miao et al. 2024,
used here for scoring rather than decoding):

- a node's RoPE position is its depth, and it attends to itself and its ancestors only, which
  is exactly what the same token sees in its own sequence under causal attention;
- every edge parent -> child is one next-token prediction, made once for all the sequences that
  run through it; a sequence's score is the sum over the edges of its path (from position
  ``first``).

The blocks run unchanged (``Block(x, cos, sin, causal=False, mask)`` with per-node RoPE tables
and a tree mask), so the result equals one causal forward per sequence up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

PACK_NODES = 128  # trie size; the N^2 tree mask stays small next to the matmuls


def build_tries(
    flat, starts, lengths, order, cap: int | None = None
) -> Iterator[tuple[np.ndarray, ...]]:
    """Greedy tries over sequences in ``order`` (sorted). A trie holds at most PACK_NODES
    nodes, or twice the longest sequence (so a long prompt is shared by its continuations),
    but no more than ``cap`` unless one sequence alone is longer. Yields per trie:
    (tokens, depth, parent, path_seq, path_node, path_pos) where node 0 is the shared ``<s>``
    and each (path_seq, path_node, path_pos) says that sequence ``path_seq`` predicts the token
    of ``path_node`` at position ``path_pos`` (>= 1)."""
    longest = int(lengths.max()) if len(lengths) else 0
    budget = max(PACK_NODES, 2 * longest)
    budget = max(min(budget, cap) if cap else budget, longest)
    tokens: list[int] = []
    depth: list[int] = []
    parent: list[int] = []
    paths: tuple[list[int], list[int], list[int]] = ([], [], [])
    stack: list[int] = []  # node of each position of the previous sequence
    prev = np.zeros(0, dtype=flat.dtype)

    def flush():
        return tuple(np.asarray(a, dtype=np.int64) for a in (tokens, depth, parent, *paths))

    for s in order:
        seq = flat[starts[s] : starts[s] + lengths[s]]
        n = min(len(seq), len(prev))
        same = seq[:n] == prev[:n]
        k = n if same.all() else int(same.argmin())  # length of the prefix shared with prev
        if tokens and len(tokens) + len(seq) - k > budget:
            yield flush()
            tokens, depth, parent, paths, stack, k = [], [], [], ([], [], []), [], 0
        del stack[k:]
        for t in range(k, len(seq)):
            parent.append(stack[-1] if stack else -1)
            stack.append(len(tokens))
            tokens.append(int(seq[t]))
            depth.append(t)
        paths[0].extend([s] * (len(seq) - 1))
        paths[1].extend(stack[1 : len(seq)])
        paths[2].extend(range(1, len(seq)))
        prev = seq
    if tokens:
        yield flush()


def _tree_batch(tries: list[tuple[np.ndarray, ...]], device: torch.device):
    """Padded (B, N) tokens and depths and the (B, 1, N, N) ancestor-or-self mask."""
    width = max(len(t[0]) for t in tries)
    B = len(tries)
    ids = np.zeros((B, width), dtype=np.int64)
    pos = np.zeros((B, width), dtype=np.int64)
    par = np.full((B, width), -1, dtype=np.int64)
    for b, (tok, dep, parent, *_) in enumerate(tries):
        ids[b, : len(tok)], pos[b, : len(tok)], par[b, : len(tok)] = tok, dep, parent
    mask = np.zeros((B, width, width), dtype=bool)
    mask[:, np.arange(width), np.arange(width)] = True  # padding nodes see only themselves
    for d in range(1, int(pos.max()) + 1):  # a node inherits its parent's ancestors
        b, i = np.nonzero((pos == d) & (par >= 0))
        mask[b, i] |= mask[b, par[b, i]]
    return (
        torch.from_numpy(ids).to(device),
        torch.from_numpy(pos).to(device),
        torch.from_numpy(mask[:, None]).to(device),
    )


def score_tries(model, tries, device, token_logprobs) -> tuple[np.ndarray, ...]:
    """Log-prob of every non-root node given its parent, for a batch of tries.

    Returns (path_seq, path_pos, logp) over all tries: the score contributions per sequence.
    """
    ids, pos, mask = _tree_batch(tries, device)
    cos = model.rope_cos[pos][:, None]  # (B, 1, N, hd)
    sin = model.rope_sin[pos][:, None]
    x = model.embed(ids)
    for block in model.blocks:
        x = block(x, cos, sin, False, mask)
    hidden = model.norm(x)  # (B, N, C)
    rows, parents, targets, offsets = [], [], [], [0]
    for b, (tok, _, parent, *_) in enumerate(tries):  # one edge per non-root node
        rows.append(np.full(len(tok) - 1, b))
        parents.append(parent[1:])
        targets.append(tok[1:])
        offsets.append(offsets[-1] + len(tok) - 1)
    index = [torch.from_numpy(np.concatenate(a)).to(device) for a in (rows, parents)]
    h = hidden[index[0], index[1]]  # (edges, C)
    logp = token_logprobs(model, h, torch.from_numpy(np.concatenate(targets)).to(device))
    logp = logp.double().cpu().numpy()
    # path_node counts nodes of its own trie; edge of node c is entry offset + c - 1
    edge = np.concatenate([t[4] + offsets[b] - 1 for b, t in enumerate(tries)])
    seqs = np.concatenate([t[3] for t in tries])
    positions = np.concatenate([t[5] for t in tries])
    return seqs, positions, logp[edge]
