"""``causal_lm``: next-token prediction with a causal mask (GPT; Radford et al. 2018)."""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output
from thrifty.objectives.token_loss import token_term


@OBJECTIVES.register("causal_lm")
class CausalLM(Objective):
    kind = "causal"
    reweightable = True

    @dataclass(kw_only=True)
    class Config:
        z_loss: float = 0.0
        """Weight of the squared log-partition penalty (PaLM's z-loss)."""

    def __call__(self, batch: Batch) -> Output:
        hidden = self.model(batch.ids[:, :-1], causal=True)
        term, per_row, metrics = token_term(
            self.model,
            hidden,
            batch.ids[:, 1:],
            batch.weights,
            self.cfg.z_loss,
            batch.reweight,
            dense=True,  # every position predicts the next token
        )
        loss = term.value
        out = {"loss": loss.detach(), "accuracy": metrics["accuracy"]}
        return Output(loss, out, per_row, {"lm": term})
