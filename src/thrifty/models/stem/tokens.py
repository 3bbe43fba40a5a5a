"""``tokens``: the token-embedding stem of a language model; its table is the tied LM head."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from thrifty.data.tokenizer import PAD_ID
from thrifty.models.stem.base import STEMS


@STEMS.register("tokens")
class TokenStem(nn.Embedding):
    pad_id = PAD_ID  # the id of padding in its input, for layers that leave pads out

    @dataclass(kw_only=True)
    class Config:
        pass

    def __init__(self, cfg: Config, model) -> None:
        if model.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size must be set before building the model")
        super().__init__(model.vocab_size, model.d_model)

    def embedding_params(self) -> int:
        return self.weight.numel()

    def flops_per_token(self, head_fraction: float) -> float:
        # the tied head is a matmul on head_fraction of the positions; the lookup is not
        return 6.0 * head_fraction * self.weight.numel()

    def reset_parameters(self, std: float | None = None) -> None:
        if std is None:  # nn.Embedding's own call from its constructor; the model inits later
            return super().reset_parameters()
        nn.init.normal_(self.weight, 0.0, std)
