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
  ``first``);
- only the root and the nodes with a child run through the blocks: a leaf's hidden state would
  predict past its sequence's end, and no other node attends to it, so it changes no score
  (about 1 node in 9 of sorted BLiMP's tries). A node with several children computes its
  log-softmax once for all of them.

The blocks run unchanged (``Block(x, cos, sin, causal=False, mask)`` with per-node RoPE tables
and a tree mask), so the result equals one causal forward per sequence up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

PACK_NODES = 128  # nodes of a trie that run through the blocks; the N^2 tree mask stays small


def build_tries(
    flat, starts, lengths, order, cap: int | None = None
) -> Iterator[tuple[np.ndarray, ...]]:
    """Greedy tries over sequences in ``order`` (sorted). A trie runs at most PACK_NODES
    nodes through the blocks (:func:`body_nodes`), or twice the longest sequence (so a long
    prompt is shared by its continuations), but no more than ``cap`` unless one sequence alone
    is longer. Yields per trie:
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
    leaves = 0  # nodes without a child so far: they stay out of the blocks

    def flush():
        return tuple(np.asarray(a, dtype=np.int64) for a in (tokens, depth, parent, *paths))

    for s in order:
        seq = flat[starts[s] : starts[s] + lengths[s]]
        n = min(len(seq), len(prev))
        same = seq[:n] == prev[:n]
        k = n if same.all() else int(same.argmin())  # length of the prefix shared with prev
        # New nodes end in a new leaf, unless they extend prev, whose leaf then gets a child.
        new_leaf = len(seq) > k and not (tokens and k == len(prev))
        if tokens and len(tokens) + len(seq) - k - leaves - new_leaf > budget:
            yield flush()
            tokens, depth, parent, paths, stack, k, leaves = [], [], [], ([], [], []), [], 0, 0
            new_leaf = True
        leaves += new_leaf
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


def body_nodes(parent: np.ndarray) -> np.ndarray:
    """Which nodes of a trie run through the blocks: the root and every node with a child."""
    keep = np.zeros(len(parent), dtype=bool)
    keep[0] = True
    keep[parent[1:]] = True
    return keep


def _tree_batch(tries: list[tuple[np.ndarray, ...]], device: torch.device):
    """Padded (B, N) tokens and depths of the tries' body nodes and their (B, 1, N, N)
    ancestor-or-self mask; ``parent`` is renumbered over the body nodes."""
    width = max(len(t[0]) for t in tries)
    B = len(tries)
    ids = np.zeros((B, width), dtype=np.int64)
    pos = np.zeros((B, width), dtype=np.int64)
    par = np.full((B, width), -1, dtype=np.int64)
    for b, (tok, dep, parent) in enumerate(tries):
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

    ``token_logprobs(model, hidden, targets, rows)`` gives log p(targets[j]) read at
    hidden[rows[j]] for rows in nondecreasing order. Returns (path_seq, path_pos, logp) over
    all tries: the score contributions per sequence.
    """
    bodies, rows, targets, offset = [], [], [], 0
    for tok, dep, parent, *_ in tries:
        keep = body_nodes(parent)
        renumber = np.cumsum(keep) - 1  # a body node's index among the body nodes
        body_parent = np.where(parent[keep] >= 0, renumber[np.maximum(parent[keep], 0)], -1)
        bodies.append((tok[keep], dep[keep], body_parent))
        rows.append(offset + renumber[parent[1:]])  # edge of node c: entry c - 1
        targets.append(tok[1:])
        offset += int(keep.sum())
    ids, pos, mask = _tree_batch(bodies, device)
    cos = model.rope_cos[pos][:, None]  # (B, 1, N, hd)
    sin = model.rope_sin[pos][:, None]
    x = model.embed(ids)
    for block in model.blocks:
        x = block(x, cos, sin, False, mask)
    hidden = model.norm(x)  # (B, N, C)
    width = ids.shape[1]
    real = np.concatenate([b * width + np.arange(len(body[0])) for b, body in enumerate(bodies)])
    h = hidden.flatten(0, 1)[torch.from_numpy(real).to(device)]  # indices: no count to read back
    edge_rows = np.concatenate(rows)  # into h: the body nodes, trie by trie
    by_row = np.argsort(edge_rows, kind="stable")
    edge_targets = torch.from_numpy(np.concatenate(targets)[by_row]).to(device)
    logp = np.empty(len(edge_rows))
    logp[by_row] = token_logprobs(model, h, edge_targets, edge_rows[by_row]).double().cpu().numpy()
    # path_node counts nodes of its own trie; edge of node c is entry offset + c - 1
    offsets = np.cumsum([0] + [len(t[0]) - 1 for t in tries])
    edge = np.concatenate([t[4] + offsets[b] - 1 for b, t in enumerate(tries)])
    seqs = np.concatenate([t[3] for t in tries])
    positions = np.concatenate([t[5] for t in tries])
    return seqs, positions, logp[edge]
