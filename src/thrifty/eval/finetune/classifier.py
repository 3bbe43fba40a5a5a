"""A sequence classifier: a thrifty backbone (pretrained or freshly initialised) plus a head.

Input layout, for every backbone: ``<s> A`` for single texts and ``<s> A <sep> B`` for pairs
(``BOS_ID`` 1, ``SEP_ID`` 5), right-padded with ``PAD_ID``. Over-long inputs lose tokens from
the end of the longer segment first, so a BoolQ question survives a long passage.

Attention follows the model's kind: ``causal`` models keep causal attention, ``mlm`` and
``mntp`` (masked, GPT-BERT hybrid) models attend both ways. Pooling by default too: causal
models read the last real token, the others ``<s>``, BERT's [CLS] position; ``pooling="mean"``
averages the real tokens instead. See ``thrifty.models.heads``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from thrifty.data.tokenizer import BOS_ID, PAD_ID, SEP_ID
from thrifty.eval.finetune.tasks import Example
from thrifty.model_kind import pooling
from thrifty.models.heads import ClassifierHead, Pooling, pool
from thrifty.models.transformer import Transformer
from thrifty.runs import build_model


class Classifier(nn.Module):
    def __init__(
        self,
        backbone: Transformer,
        num_labels: int,
        pooling: Pooling,
        dropout: float = 0.1,
        causal: bool | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.causal = pooling == "last" if causal is None else causal
        self.head = ClassifierHead(backbone.cfg.d_model, num_labels, dropout)

    def features(self, ids: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """(B, C) pooled features of right-padded ids (B, T); padding is True on real tokens."""
        hidden = self.backbone(ids, causal=self.causal, padding=padding)  # (B, T, C)
        return pool(hidden, padding, self.pooling)

    def forward(self, ids: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(ids, padding))  # (B, num_labels)


def build_classifier(
    loaded,
    num_labels: int,
    *,
    pretrained: bool = True,
    seed: int = 0,
    dropout: float = 0.1,
    how: Pooling | None = None,
) -> Classifier:
    """Backbone of ``loaded`` (a ``runs.LoadedModel``) + a head initialised from ``seed``;
    ``how``: the pooling (None: the kind's, ``thrifty.model_kind.pooling``).

    ``pretrained=False`` keeps the architecture and draws fresh weights from the model's own
    init. Either way the head's weights depend on ``seed`` only, so both arms of a comparison
    start from the same head.
    """
    torch.manual_seed(seed)
    backbone = build_model(loaded.cfg, loaded.state)
    if pretrained:
        backbone.load_state_dict(loaded.model.state_dict())
    causal = loaded.kind == "causal"
    model = Classifier(backbone, num_labels, how or pooling(loaded.kind), dropout, causal)
    return model.to(next(loaded.model.parameters()).device)


@dataclass
class Encoded:
    ids: list[np.ndarray]
    """Token ids per example, starting with <s>."""
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Encoded:
        return Encoded([self.ids[i] for i in idx], self.labels[np.asarray(idx, dtype=np.int64)])

    def lengths(self) -> np.ndarray:
        """(N,) tokens per example: the trainer batches similar lengths together."""
        return np.array([len(r) for r in self.ids])

    def inputs(self, idx: Sequence[int] | np.ndarray, device: torch.device | str = "cpu"):
        """The classifier's arguments for the examples ``idx``: padded ids and their mask."""
        return collate([self.ids[i] for i in idx], device)


def _fit(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Segment lengths within ``budget`` tokens, trimming the longer segment first."""
    if len_a + len_b <= budget:
        return len_a, len_b
    half = budget // 2
    if min(len_a, len_b) <= half:
        return (len_a, budget - len_a) if len_a <= len_b else (budget - len_b, len_b)
    return budget - half, half


def encode(tokenizer, examples: Sequence[Example], max_len: int) -> Encoded:
    """Token ids ``<s> A [<sep> B]`` of at most ``max_len`` tokens per example."""
    if not examples:
        return Encoded([], np.zeros(0, dtype=np.int64))
    pair = [e.text_b is not None for e in examples]
    if any(pair) and not all(pair):
        raise ValueError("examples mix single texts and pairs")
    if max_len < 2 + 2 * pair[0]:
        raise ValueError(f"max_len={max_len} leaves no room for the text")
    a = tokenizer.encode_batch([e.text_a for e in examples], add_special_tokens=False)
    b = (
        tokenizer.encode_batch([e.text_b for e in examples], add_special_tokens=False)
        if pair[0]
        else None
    )
    rows = []
    for i, enc in enumerate(a):
        if b is None:
            rows.append(np.array([BOS_ID, *enc.ids[: max_len - 1]], dtype=np.int64))
            continue
        n_a, n_b = _fit(len(enc.ids), len(b[i].ids), max_len - 2)
        rows.append(np.array([BOS_ID, *enc.ids[:n_a], SEP_ID, *b[i].ids[:n_b]], dtype=np.int64))
    return Encoded(rows, np.array([e.label for e in examples], dtype=np.int64))


def collate(rows: Sequence[np.ndarray], device: torch.device | str = "cpu"):
    """Right-padded ids (B, T) and the padding mask (B, T), True on real tokens."""
    lengths = np.array([len(r) for r in rows])
    ids = np.full((len(rows), int(lengths.max())), PAD_ID, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    padding = np.arange(ids.shape[1])[None, :] < lengths[:, None]
    return torch.from_numpy(ids).to(device), torch.from_numpy(padding).to(device)
