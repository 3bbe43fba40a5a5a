"""``masked_lm``: BERT's masked-token prediction with bidirectional attention (Devlin et al. 2019).

Position t predicts the token masked at t. The loss averages over masked positions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thrifty.objectives.base import IGNORE, OBJECTIVES, Batch, Objective, Output
from thrifty.objectives.masking import Masking, mask_tokens
from thrifty.objectives.token_loss import token_term
from thrifty.transfer import to_device


@OBJECTIVES.register("masked_lm")
class MaskedLM(Objective):
    kind = "mlm"
    reweightable = True

    @dataclass(kw_only=True)
    class Config:
        mask_rate: float = 0.15
        """Share of tokens chosen for prediction."""
        masking: Masking = field(default_factory=lambda: Masking(span=False))
        """Token or span masking and the 80/10/10 split."""
        z_loss: float = 0.0
        """Weight of the squared log-partition penalty."""

    def head_fraction(self) -> float:
        return self.cfg.mask_rate

    def __call__(self, batch: Batch) -> Output:
        ids = batch.ids[:, :-1]
        random = self.random(batch, "mask")
        host = batch.on_host()[:, :-1]
        corrupted, chosen = mask_tokens(
            host, self.cfg.mask_rate, self.cfg.masking, self.model.cfg.vocab_size, random
        )
        targets = ids.masked_fill(~to_device(chosen, ids.device), IGNORE)
        hidden = self.model(to_device(corrupted, ids.device), causal=False)
        term, per_row, metrics = token_term(
            self.model,
            hidden,
            targets,
            batch.weights,
            self.cfg.z_loss,
            batch.reweight,
            supervised=chosen,
        )
        loss = term.value
        out = {"loss": loss.detach(), "mlm_accuracy": metrics["accuracy"]}
        return Output(loss, out, per_row, {"mlm": term})
