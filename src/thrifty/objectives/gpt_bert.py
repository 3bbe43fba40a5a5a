"""``gpt_bert``: hybrid causal + masked next-token prediction (Charpentier & Samuel 2024).

MNTP shifts MLM by one position: the hidden state at j-1 predicts the masked token at j, so the
causal and masked objectives share one layout and one tied head. Mixing 1 causal : 15 masked
(the released code's ratio) either within every micro-batch (``per_batch``: the first sixteenth
of the global micro-batch's rows are causal, the two losses weighted 1/16 and 15/16), across
micro-batches (``per_step``: every 16th micro-batch is causal), or per example as the BabyLM
2025 baselines mix (``per_example``: each training sample is causal with probability 1/16,
decided by a hash of its global index, so the mix does not depend on the batch size, the world
size or where a run resumed; each part's mean loss is weighted by its share of the micro-batch's
rows). The mask rate anneals linearly from 0.30 to 0.15 over training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from thrifty.objectives.base import (
    IGNORE,
    OBJECTIVES,
    Batch,
    Objective,
    Output,
    combine,
)
from thrifty.objectives.masking import Masking, mask_tokens
from thrifty.objectives.randomness import RowRandom, sample_uniforms
from thrifty.objectives.token_loss import token_term
from thrifty.transfer import to_device


@OBJECTIVES.register("gpt_bert")
class GPTBERT(Objective):
    kind = "mntp"
    reweightable = True

    @dataclass(kw_only=True)
    class Config:
        causal_fraction: float = 1 / 16
        """Share of the signal from the causal objective (paper: 1 causal : 15 masked)."""
        mix: Literal["per_batch", "per_step", "per_example"] = "per_batch"
        """Split every micro-batch's rows, alternate whole micro-batches, or draw each
        example's mode (by its global sample index)."""
        mask_rate_start: float = 0.30
        """MNTP mask rate at the start of training."""
        mask_rate_end: float = 0.15
        """MNTP mask rate at the end (linear in between)."""
        masking: Masking = field(default_factory=Masking)
        """Span masking with 80/10/10 replacement."""
        z_loss: float = 1e-4
        """Weight of the squared log-partition penalty (released code: 1e-4)."""

        def __post_init__(self) -> None:
            if not 0.0 <= self.causal_fraction <= 1.0:
                raise ValueError("causal_fraction must lie in [0, 1]")

    def mask_rate(self, progress: float) -> float:
        start, end = self.cfg.mask_rate_start, self.cfg.mask_rate_end
        return start + (end - start) * min(max(progress, 0.0), 1.0)

    def head_fraction(self) -> float:
        mean_rate = (self.cfg.mask_rate_start + self.cfg.mask_rate_end) / 2
        return self.cfg.causal_fraction + (1 - self.cfg.causal_fraction) * mean_rate

    def causal_part(self, ids: torch.Tensor, weights: torch.Tensor | None, reweight=None):
        hidden = self.model(ids[:, :-1], causal=True)
        targets = ids[:, 1:]  # every position predicts the next token: the dense head
        return token_term(self.model, hidden, targets, weights, self.cfg.z_loss, reweight, True)

    def masked_part(
        self,
        ids: torch.Tensor,
        weights: torch.Tensor | None,
        rate: float,
        random: RowRandom,
        reweight=None,
        host_ids: torch.Tensor | None = None,
    ):
        """MNTP on (B, T+1) ``ids``; ``host_ids``: the same rows on the host (else copied back)."""
        host = ids.cpu() if host_ids is None else host_ids
        corrupted, chosen = mask_tokens(
            host, rate, self.cfg.masking, self.model.cfg.vocab_size, random
        )
        read = chosen[:, 1:]  # token j is read at j-1
        targets = ids[:, 1:].masked_fill(~to_device(read, ids.device), IGNORE)
        hidden = self.model(to_device(corrupted[:, :-1], ids.device), causal=False)
        return token_term(
            self.model, hidden, targets, weights, self.cfg.z_loss, reweight, supervised=read
        )

    def global_causal(self, batch: Batch) -> torch.Tensor:
        """(rows of the global micro-batch,) bool under ``per_example``: which are causal, by
        each row's global sample index; every rank computes them all."""
        samples = batch.sample_indices()
        return sample_uniforms(self.seed, "causal", samples) < self.cfg.causal_fraction

    def n_causal(self, batch: Batch) -> int:
        """Causal rows of the global micro-batch: under ``per_batch`` the first
        ``round(causal_fraction · rows)`` (at least one); under ``per_example`` as drawn."""
        total, frac = batch.total_rows, self.cfg.causal_fraction
        if self.cfg.mix == "per_example":
            return int(self.global_causal(batch).sum())
        if frac >= 1 or frac <= 0:
            return total if frac >= 1 else 0
        return min(total, max(1, round(total * frac)))

    def causal_rows(self, batch: Batch) -> torch.Tensor:
        """(B,) bool: the rows trained causally. ``per_step``: the whole micro-batch every
        ``1 / causal_fraction``-th micro-batch; ``per_batch``: the first ``n_causal`` rows of the
        *global* micro-batch, so the split is the same on any number of processes."""
        B, frac = batch.ids.shape[0], self.cfg.causal_fraction
        if self.cfg.mix == "per_step" and 0 < frac < 1:
            period = round(1 / frac)
            return torch.full((B,), batch.micro % period == period - 1)
        if self.cfg.mix == "per_example":
            return self.global_causal(batch)[batch.positions()]
        return torch.tensor(batch.positions(), dtype=torch.long) < self.n_causal(batch)

    def __call__(self, batch: Batch) -> Output:
        rate = self.mask_rate(batch.progress)
        causal = self.causal_rows(batch)
        within = self.cfg.mix in ("per_batch", "per_example")  # both parts in one micro-batch
        n_causal = self.n_causal(batch)
        frac = self.cfg.causal_fraction
        if self.cfg.mix == "per_example":  # each part weighs what share of the rows it has
            frac = n_causal / batch.total_rows
        w = batch.weights
        device = batch.ids.device
        per_row = torch.zeros(len(causal), device=device)
        terms, metrics = {}, {"mask_rate": rate}
        # A rank runs every part the global micro-batch has, on no rows where it holds none of
        # that part: its term is then 0 / 0 (exact zeros for the gradient), loss-based weights
        # are still normalised over all ranks' rows of the part (one gather each), and a sharded
        # model's forwards, which are collectives, are the same on every rank.
        # The parts' rows are picked by indices sent to the device: a host mask would be
        # copied there and counted, a wait for the device in every step.
        has_causal = n_causal > 0 if within else bool(causal.any())
        if has_causal:
            at = to_device(causal.nonzero()[:, 0], device)
            wc = w.index_select(0, at) if w is not None else None
            term, rows, _ = self.causal_part(batch.ids.index_select(0, at), wc, batch.reweight)
            terms["causal"] = replace(term, weight=frac)
            per_row[at] = rows
            if causal.any():  # a rank without causal rows reports no causal loss
                metrics["causal_loss"] = term.value.detach()
        has_masked = n_causal < batch.total_rows if within else not bool(causal.all())
        if has_masked:
            at = to_device((~causal).nonzero()[:, 0], device)
            wm = w.index_select(0, at) if w is not None else None
            random = self.random(batch, "mask").select(~causal)
            ids, host = batch.ids.index_select(0, at), batch.on_host()[~causal]
            term, rows, m = self.masked_part(ids, wm, rate, random, batch.reweight, host)
            terms["mntp"] = replace(term, weight=1 - frac)
            per_row[at] = rows
            if not causal.all():
                metrics.update(mntp_loss=term.value.detach(), mntp_accuracy=m["accuracy"])
        if len(terms) == 1:  # one part in the whole step: it is the loss
            terms = {k: replace(t, weight=1.0) for k, t in terms.items()}
        loss = combine(terms)
        metrics["loss"] = loss.detach()
        return Output(loss, metrics, per_row, terms)
