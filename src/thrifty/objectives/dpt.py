"""``dpt``: the Decision-Pretrained Transformer's supervised pretraining (Lee et al. 2023, arXiv
2306.14892).

The model reads a task's query token then its in-context transitions (``transitions`` stem)
with causal attention, so position j sees the query and the first j transitions. An action
head (owned here) predicts the task's optimal action at every position, and the loss is
Σ_j −log M(a* | s_q, D_{<=j}) over j = 0..n: one sequence trains every context size, which is
what lets the same model act online from an empty history. No randomness: the data carries it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.errors import UserError
from thrifty.models.stem.transitions import TransitionStem
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output, row_term


def action_logits(model, head: nn.Module, context: torch.Tensor) -> torch.Tensor:
    """(B, T, arms) action logits of a policy after every prefix of ``context`` (B, T, F)."""
    return head(model(context, causal=True)).float()


@OBJECTIVES.register("dpt")
class DecisionPretraining(Objective):
    kind = "policy"

    @dataclass(kw_only=True)
    class Config:
        every_prefix: bool = True
        """Cross-entropy at every context size j = 0..n (DPT); False: only with the whole
        context (an ablation: the model then never learns to act from a short history)."""

    def __init__(self, cfg, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        stem = model.embed
        if not isinstance(stem, TransitionStem):
            raise UserError(
                "objective dpt trains a policy over transitions: set model.stem=transitions"
            )
        self.arms = stem.arms
        self.owned = nn.Linear(model.cfg.d_model, stem.arms, bias=False).to(stem.proj.weight.device)
        nn.init.normal_(self.owned.weight, 0.0, model.cfg.init_std)

    def __call__(self, batch: Batch) -> Output:
        context, target = batch.inputs["context"], batch.inputs["actions"]  # (B, T, F), (B,)
        logits = action_logits(self.model, self.owned, context)  # (B, T, arms)
        B, T = logits.shape[:2]
        losses = F.cross_entropy(
            logits.reshape(B * T, -1), target.repeat_interleave(T), reduction="none"
        ).view(B, T)
        supervised = losses if self.cfg.every_prefix else losses[:, -1:]
        term, per_row = row_term(supervised, batch.weights)
        with torch.no_grad():
            correct = (logits.argmax(-1) == target[:, None]).float()  # (B, T)
        loss = term.value
        metrics = {
            "loss": loss.detach(),
            "accuracy": correct.mean(),
            "accuracy_empty": correct[:, 0].mean(),
            "accuracy_full": correct[:, -1].mean(),
        }
        return Output(loss, metrics, per_row.detach(), {"dpt": term})

    def head_fraction(self) -> float:
        return 0.0  # no LM head

    def extra_flops_per_token(self, seq_len: int) -> float:
        return 6.0 * self.owned.weight.numel()
