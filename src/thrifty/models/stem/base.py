"""The STEMS registry: the model's input stem (``model.stem``), what turns a batch's inputs into
the (B, T, C) sequence the blocks read.

A member is built as ``cls(cfg, model_cfg)`` and provides ``forward(inputs) -> (B, T, C)`` and
``reset_parameters(std)``. The ``tokens`` stem is an embedding table that the LM head reuses
(tied weights; a lookup, so it adds no FLOPs). Stems of other modalities (patches of an image,
transitions of a trajectory) register here and share the same blocks; one that computes (a
patch projection) adds its FLOPs to ``Transformer.flops_per_token`` when it lands.
"""

from __future__ import annotations

from thrifty.registry import Registry

STEMS = Registry("stem")
