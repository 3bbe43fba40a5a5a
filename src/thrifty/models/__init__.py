"""Models: the Llama-layout transformer and its swappable linear layers."""
