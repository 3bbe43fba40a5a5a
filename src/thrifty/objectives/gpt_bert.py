"""``gpt_bert``: hybrid causal + masked next-token prediction (Charpentier & Samuel 2024).

MNTP shifts MLM by one position: the hidden state at j-1 predicts the masked token at j, so the
causal and masked objectives share one layout and one tied head. Mixing 1 causal : 15 masked
(the released code's ratio) either within every micro-batch (``per_batch``: rows split, losses
weighted 1/16 and 15/16) or across micro-batches (``per_step``: every 16th micro-batch is
causal). The mask rate anneals linearly from 0.30 to 0.15 over training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from thrifty.objectives.base import IGNORE, OBJECTIVES, Batch, Objective, Output, token_loss
from thrifty.objectives.masking import Masking, mask_tokens


@OBJECTIVES.register("gpt_bert")
class GPTBERT(Objective):
    default_backend = "mntp"
    reweightable = True

    @dataclass(kw_only=True)
    class Config:
        causal_fraction: float = 1 / 16
        """Share of the signal from the causal objective (paper: 1 causal : 15 masked)."""
        mix: Literal["per_batch", "per_step"] = "per_batch"
        """Split every micro-batch's rows, or alternate whole micro-batches."""
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
        return token_loss(self.model, hidden, ids[:, 1:], weights, self.cfg.z_loss, reweight)

    def masked_part(
        self, ids: torch.Tensor, weights: torch.Tensor | None, rate: float, reweight=None
    ):
        corrupted, chosen = mask_tokens(
            ids, rate, self.cfg.masking, self.model.cfg.vocab_size, self.generator
        )
        targets = ids[:, 1:].masked_fill(~chosen[:, 1:], IGNORE)  # token j read at j-1
        hidden = self.model(corrupted[:, :-1], causal=False)
        return token_loss(self.model, hidden, targets, weights, self.cfg.z_loss, reweight)

    def __call__(self, batch: Batch) -> Output:
        rate = self.mask_rate(batch.progress)
        frac = self.cfg.causal_fraction
        if self.cfg.mix == "per_step":
            period = round(1 / frac) if frac > 0 else 0
            is_causal = frac >= 1 or (period > 0 and batch.micro % period == period - 1)
            if is_causal:
                loss, per_row, m = self.causal_part(batch.ids, batch.weights, batch.reweight)
                return Output(loss, {"loss": loss.item(), "causal_loss": loss.item()}, per_row)
            loss, per_row, m = self.masked_part(batch.ids, batch.weights, rate, batch.reweight)
            metrics = {"loss": loss.item(), "mntp_loss": loss.item(), "mask_rate": rate}
            return Output(loss, {**metrics, "mntp_accuracy": m["accuracy"]}, per_row)

        B = batch.ids.shape[0]
        n_causal = min(B, max(1, round(B * frac))) if frac > 0 else 0
        n_causal = B if frac >= 1 else n_causal
        w = batch.weights
        parts, per_rows, metrics = [], [], {"mask_rate": rate}
        if n_causal:
            wc = w[:n_causal] / w[:n_causal].sum() if w is not None else None
            loss_c, rows_c, _ = self.causal_part(batch.ids[:n_causal], wc, batch.reweight)
            parts.append(frac * loss_c)
            per_rows.append(rows_c)
            metrics["causal_loss"] = loss_c.item()
        if n_causal < B:
            wm = w[n_causal:] / w[n_causal:].sum() if w is not None else None
            loss_m, rows_m, m = self.masked_part(batch.ids[n_causal:], wm, rate, batch.reweight)
            parts.append((1 - frac) * loss_m if n_causal else loss_m)
            per_rows.append(rows_m)
            metrics.update(mntp_loss=loss_m.item(), mntp_accuracy=m["accuracy"])
        loss = sum(parts)
        metrics["loss"] = loss.item()
        return Output(loss, metrics, torch.cat(per_rows))
