"""``dobf``: causal LM whose loss covers only what follows ``<sep>`` in a pair document.

DOBF (Lachaux et al. 2021, "DOBF: a deobfuscation pre-training objective for programming
languages") trains a model to recover the original names of obfuscated code. ObscuraCoder
(Paul et al. 2025, ``papers/obscuracoder.md``) uses it as a baseline; thrifty's DOBF documents
are ``<s> obf <sep> v1 name1 f1 name2 ...`` (``thrifty.data.code_task``). Here a causal model
reads the whole document and is scored on the name map only: in a ``<s>``-delimited document
that holds a ``<sep>``, the targets after the ``<sep>``; a document without one (plain code,
mixed in) is scored on every token, as ``causal_lm`` would. ``<pad>`` targets (the padding that
keeps a pair inside one window) never count.

This needs each pair to lie inside one training window, which ``thrifty code-task`` arranges for
``data.seq_len`` equal to its ``--seq-len``. A window whose text before its first ``<s>`` holds a
``<sep>`` started inside a pair: the metric ``dobf_crossed`` counts such rows (the part of that
pair in the window before would have been scored), and a warning says the data were packed for
another window length.

``supervise: all`` scores every token but padding: the loss of ObscuraCoder's grounded pairs
(``obf <sep> orig`` and back), for data with padding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch

from thrifty.data.tokenizer import BOS_ID, PAD_ID, SEP_ID
from thrifty.objectives.base import IGNORE, OBJECTIVES, Batch, Objective, Output
from thrifty.objectives.token_loss import token_term
from thrifty.transfer import to_device

log = logging.getLogger(__name__)


def supervised_targets(ids: torch.Tensor, after_sep: bool = True) -> tuple[torch.Tensor, int]:
    """(B, T) targets of the (B, T+1) windows ``ids``, IGNORE where unscored (module
    docstring); and the number of rows that start inside a pair."""
    is_bos, is_sep = ids == BOS_ID, ids == SEP_ID
    segment = is_bos.long().cumsum(1)  # (B, T+1): 0 before the first <s>
    seps = is_sep.long().cumsum(1)
    before = seps - is_sep.long()  # <sep>s strictly before each position
    # <sep>s before the segment's <s>: cummax of the value at each <s> (seps never decrease)
    base = torch.where(is_bos, before, torch.zeros_like(before)).cummax(1).values
    ends = torch.zeros(ids.shape[0], ids.shape[1] + 1, dtype=torch.long)
    ends = ends.scatter_reduce(1, segment, seps, reduce="amax")  # (B, segments): seps at end
    has_sep = ends.gather(1, segment) - base > 0
    keep = ids != PAD_ID
    if after_sep:
        keep &= ~has_sep | (before - base > 0)
    crossed = int(((segment == 0) & is_sep).any(1).sum())
    targets = ids.masked_fill(~keep, IGNORE)[:, 1:]
    return targets, crossed


@OBJECTIVES.register("dobf")
class Dobf(Objective):
    kind = "causal"
    reweightable = True

    @dataclass(kw_only=True)
    class Config:
        supervise: Literal["after_sep", "all"] = "after_sep"
        """after_sep: in a document with <sep>, only the tokens after it (DOBF's name map);
        all: every token but padding (ObscuraCoder's grounded pairs)."""
        z_loss: float = 0.0
        """Weight of the squared log-partition penalty (PaLM's z-loss)."""

    _warned = False

    def __call__(self, batch: Batch) -> Output:
        # on the host copy: the targets are known there, so the head gathers them by index and
        # the crossing count needs no read back from the device
        host, crossed = supervised_targets(batch.on_host(), self.cfg.supervise == "after_sep")
        targets = to_device(host, batch.ids.device)
        if crossed and not self._warned:
            self._warned = True
            log.warning(
                "dobf: %d window(s) start inside a pair: the data were packed for another "
                "data.seq_len (prepare with thrifty code-task --seq-len equal to it)",
                crossed,
            )
        hidden = self.model(batch.ids[:, :-1], causal=True)
        term, per_row, metrics = token_term(
            self.model,
            hidden,
            targets,
            batch.weights,
            self.cfg.z_loss,
            batch.reweight,
            supervised=host != IGNORE,
        )
        loss = term.value
        out = {"loss": loss.detach(), "accuracy": metrics["accuracy"], "dobf_crossed": crossed}
        return Output(loss, out, per_row, {"lm": term})
