"""What kind of model a run trains, and what follows from it for scoring and fine-tuning.

The objective declares the kind (``Objective.kind``); the checkpoint records it in
``state.json`` (``model_kind``) so export, evaluation, fine-tuning and reports read it and never
rebuild an objective to find out (``thrifty.runs.LoadedModel.kind``).

- ``causal``: next-token prediction (GPT); scored causally, pooled at the last real token.
- ``mlm``: masked prediction at the masked position (BERT); scored by pseudo-log-likelihood.
- ``mntp``: masked next-token prediction (GPT-BERT): position t predicts the token at t+1.
- ``discriminator``: replaced-token detection (ELECTRA, MCL): no token log-probs to score.
- ``encoder``: an image encoder (MAE, CLIP, SoftCon, distillation): features, no tokens.
- ``policy``: a decision-making model (DPT, behaviour cloning): actions, no tokens.
"""

from __future__ import annotations

from typing import Literal

ModelKind = Literal["causal", "mlm", "mntp", "discriminator", "encoder", "policy"]
KINDS: tuple[str, ...] = ("causal", "mlm", "mntp", "discriminator", "encoder", "policy")
TEXT_KINDS: tuple[str, ...] = ("causal", "mlm", "mntp", "discriminator")


def scoring_backend(kind: str) -> str | None:
    """The log-prob backend that suits the kind (None: the model assigns no log-probs)."""
    return kind if kind in TEXT_KINDS and kind != "discriminator" else None


def pooling(kind: str) -> Literal["first", "last"]:
    """``last`` real token for causal models; ``first`` (<s>, which sees every token) otherwise."""
    return "last" if kind == "causal" else "first"
