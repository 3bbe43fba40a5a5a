"""Export thrifty checkpoints to other ecosystems (Hugging Face ``transformers``)."""

from thrifty.export.hf import export_hf

__all__ = ["export_hf"]
