"""Answer accuracy on equations: the test accuracy of the grokking task.

Power et al. 2022 ("Grokking") report exact-match accuracy on the result of held-out equations;
Li, Fan & Zhou 2025 (``papers/grokking_pathways.md``) set their training-only pathway metrics
against it. The equations come back from a prepared dataset by decoding its documents
(``thrifty.data.modular`` writes one equation per document), so nothing beyond the dataset is
needed. Each is fed as ``<s> a op b = c`` with teacher forcing; it counts as right when the
causal model's argmax is the true token at every answer position. Answers of several tokens
are handled (rows are right-padded, which a causal model never looks at).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn

from thrifty.data.modular import Equation, parse_equation
from thrifty.data.tokenizer import BOS_ID, PAD_ID
from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError


def store_equations(store: TokenStore, tokenizer: Tokenizer) -> list[Equation]:
    """The equations of every document of ``store``, in order (BOS dropped, text parsed)."""
    offsets = store.doc_offsets()
    docs = [store.tokens[start + 1 : end].tolist() for start, end in zip(offsets, offsets[1:])]
    return [parse_equation(text) for text in tokenizer.decode_batch(docs)]


def encode_equations(
    equations: Sequence[Equation], tokenizer: Tokenizer
) -> tuple[torch.Tensor, torch.Tensor]:
    """``<s> a op b = c`` as right-padded ids (N, T) and the answer positions (N, T) bool."""
    prompts = tokenizer.encode_batch([e.prompt for e in equations], add_special_tokens=False)
    full = tokenizer.encode_batch([e.text for e in equations], add_special_tokens=False)
    rows, answers = [], []
    for e, prompt, whole in zip(equations, prompts, full, strict=True):
        n = len(prompt.ids)
        # byte-level BPE merges within pre-tokens only, so the prompt's tokens stay a prefix
        if whole.ids[:n] != prompt.ids or len(whole.ids) == n:
            raise UserError(
                f"equation {e.text!r}: its answer does not tokenize apart from a prompt"
            )
        rows.append([BOS_ID, *whole.ids])
        answers.append(range(1 + n, 1 + len(whole.ids)))
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), PAD_ID, dtype=torch.long)
    is_answer = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, (row, answer) in enumerate(zip(rows, answers)):
        ids[i, : len(row)] = torch.tensor(row)
        is_answer[i, answer.start : answer.stop] = True
    return ids, is_answer


@torch.no_grad()
def equation_correct(
    model: nn.Module, ids: torch.Tensor, is_answer: torch.Tensor, batch_size: int = 512
) -> torch.Tensor:
    """(N,) bool: the argmax after each position matches every answer token of the row.

    ``model(ids, causal=True)`` gives hidden states and ``model.logits(hidden)`` their logits,
    as for ``thrifty.models.transformer.Transformer``.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = []
    for start in range(0, len(ids), batch_size):
        x = ids[start : start + batch_size].to(device)
        need = is_answer[start : start + batch_size, 1:].to(device)  # targets of positions :-1
        hidden = model(x[:, :-1], causal=True)  # (B, T-1, C)
        predicted = model.logits(hidden).argmax(-1)  # (B, T-1)
        out.append(((predicted == x[:, 1:]) | ~need).all(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def answer_accuracy(
    model: nn.Module,
    tokenizer: Tokenizer,
    store_or_dataset: TokenStore | str | Path,
    *,
    split: str = "valid",
    batch_size: int = 512,
) -> float:
    """Exact-match accuracy on the answers of every equation of a prepared dataset's ``split``
    (its validation split: the held-out equations), or of a ``TokenStore``'s."""
    store = (
        store_or_dataset
        if isinstance(store_or_dataset, TokenStore)
        else TokenStore(Path(store_or_dataset), split)
    )
    found = store_equations(store, tokenizer)
    if not found:
        raise UserError(f"{store.path}: the {store.split} split holds no equations")
    ids, is_answer = encode_equations(found, tokenizer)
    was_training = model.training
    model.eval()
    try:
        correct = equation_correct(model, ids, is_answer, batch_size)
    finally:
        model.train(was_training)
    return correct.float().mean().item()
