"""The STEMS registry: the model's input stem (``model.stem``), what turns a batch's inputs into
the (B, T, C) sequence the blocks read.

A member is built as ``cls(cfg, model_cfg)`` and provides:

- ``forward(inputs) -> (B, T, C)``;
- ``reset_parameters(std)``;
- ``embedding_params()``: its parameters that ``num_params(embeddings=False)`` leaves out;
- ``flops_per_token(head_fraction)``: training FLOPs per token of the stem (and of the tied LM
  head, for ``tokens``), added to the blocks' in ``Transformer.flops_per_token``.

The ``tokens`` stem is an embedding table that the LM head reuses (tied weights; the lookup
adds no FLOPs, the head does). ``patches`` cuts images into patches and projects them (its
matmul counts). Stems of other modalities (transitions of a trajectory) register here and
share the same blocks.
"""

from __future__ import annotations

from thrifty.registry import Registry

STEMS = Registry("stem")
