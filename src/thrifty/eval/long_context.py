"""Length generalisation: a trained model run past its training length, with or without RoPE
context extension, on key-value recall and on held-out text (the meta-tokens check,
``papers/meta_tokens.md``).

``extended`` rebuilds a loaded model with RoPE tables for longer inputs (``model.rope_scaling``
and ``rope_factor``, measured against the training length) and the same weights. Both scores
read text with the run's meta-tokens: for a ``meta_lm`` run an ``<m>`` every round(1 / rate)
positions (``insert_periodic``: evaluation's deterministic form of the training transform),
added to the text, so every arm reads the same real tokens; ``<m>`` targets are never scored.

- ``recall_accuracy``: a recall test file (``thrifty.data.recall``): the share of the queried
  values' tokens that are the argmax after the token before (teacher forcing; every value is
  one token when the dataset's tokenizer read it in training);
- ``heldout_loss``: mean next-token loss over windows of ``length`` real tokens of a prepared
  dataset's validation split.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from thrifty.data.recall import SEPARATOR, parse_sequence
from thrifty.data.tokenizer import BOS_ID, META_ID
from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer
from thrifty.objectives.meta_tokens import insert_periodic


def meta_rate(objective: dict) -> float:
    """The share of meta-tokens a run's objective section trained with (0: none)."""
    if objective.get("name") != "meta_lm":
        return 0.0
    from thrifty.objectives.meta_tokens import MetaTokenLM

    return float(objective.get("rate", MetaTokenLM.Config().rate))


def extended(
    model: Transformer, length: int, scaling: str = "none", train_len: int | None = None
) -> Transformer:
    """``model``'s weights with RoPE tables for ``length`` positions; ``scaling`` (linear, yarn)
    stretches the ``train_len`` positions it was trained on by length / train_len."""
    cfg = model.cfg
    factor = max(1.0, length / train_len) if scaling != "none" and train_len else 1.0
    bigger = replace(
        cfg,
        max_seq_len=max(length, cfg.max_seq_len),
        rope_scaling=scaling,
        rope_factor=factor,
        rope_original_len=train_len if scaling != "none" else None,
    )
    out = Transformer(bigger)
    out.load_state_dict(model.state_dict())
    return out.to(next(model.parameters()).device).eval()


def _value_tokens(tokenizer: Tokenizer, text: str) -> tuple[list[int], list[bool]]:
    """Token ids of a recall line and which of them belong to a queried value."""
    enc = tokenizer.encode(text, add_special_tokens=False)
    asked_from = text.index(f" {SEPARATOR} ") + 3
    # the queried values are every second word after the separator, in character spans
    spans, pos = [], asked_from
    for i, word in enumerate(text[asked_from:].split(" ")):
        if i % 2:
            spans.append((pos - 1, pos + len(word)))  # with the space before it
        pos += len(word) + 1
    inside = [any(a <= s and e <= b for a, b in spans) for s, e in enc.offsets]
    return enc.ids, inside


@torch.no_grad()
def recall_accuracy(
    model: Transformer, tokenizer: Tokenizer, path: Path, rate: float = 0.0, batch_size: int = 16
) -> float:
    """Accuracy over the tokens of every queried value of the recall file ``path``."""
    path = Path(path)
    lines = [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    if not lines:
        raise UserError(f"{path}: no recall sequences")
    rows = []
    for n, line in enumerate(lines, 1):
        parse_sequence(line, f"{path}:{n}")
        ids, value = _value_tokens(tokenizer, line)
        ids, value = torch.tensor([[BOS_ID, *ids]]), torch.tensor([[False, *value]])
        ids, moved = insert_periodic(ids, rate)
        is_value = torch.zeros_like(ids, dtype=torch.bool)
        is_value[:, moved] = value
        rows.append((ids[0], is_value[0]))
    device = next(model.parameters()).device
    right = total = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        T = max(len(ids) for ids, _ in chunk)
        ids = torch.zeros(len(chunk), T, dtype=torch.long)
        need = torch.zeros(len(chunk), T, dtype=torch.bool)
        for i, (row, value) in enumerate(chunk):  # right-padded: causal, so never read
            ids[i, : len(row)], need[i, : len(row)] = row, value
        if T > model.cfg.max_seq_len:
            raise UserError(f"{path}: {T} tokens exceed the model's {model.cfg.max_seq_len}")
        predicted = model.logits(model(ids[:, :-1].to(device), causal=True)).argmax(-1).cpu()
        good = (predicted == ids[:, 1:]) & need[:, 1:]
        right += int(good.sum())
        total += int(need[:, 1:].sum())
    return right / total if total else 0.0


@torch.no_grad()
def heldout_loss(
    model: Transformer,
    store: TokenStore,
    length: int,
    rate: float = 0.0,
    max_windows: int = 64,
    batch_size: int = 8,
) -> float:
    """Mean next-token loss (nats) over the real targets of up to ``max_windows`` windows of
    ``length`` real tokens of ``store`` (evenly spread), meta-tokens added at ``rate``."""
    n = store.num_windows(length)
    if n == 0:
        raise UserError(f"{store.path}: the {store.split} split is shorter than {length} tokens")
    picks = torch.linspace(0, n - 1, min(n, max_windows)).round().long().unique()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(picks), batch_size):
        ids, _ = insert_periodic(store.windows(picks[start : start + batch_size], length), rate)
        if ids.shape[1] - 1 > model.cfg.max_seq_len:
            raise UserError(f"{ids.shape[1] - 1} positions exceed the model's max_seq_len")
        ids = ids.to(device)
        logits = model.logits(model(ids[:, :-1], causal=True)).float()
        targets = ids[:, 1:].masked_fill(ids[:, 1:] == META_ID, -100)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
        total += loss.item()
        count += int((targets != -100).sum())
    return total / count
