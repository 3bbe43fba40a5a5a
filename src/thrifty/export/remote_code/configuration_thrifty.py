"""Configuration of a thrifty model exported with ``thrifty export --remote-code``.

Loaded by ``transformers`` with ``trust_remote_code=True`` (``auto_map`` in config.json); it
imports only transformers. The fields mirror thrifty's ``ModelConfig`` under the names
``transformers`` uses for Llama, plus what the masked-LM logits mean:

- ``objective``: the thrifty training objective (``masked_lm`` or ``gpt_bert``).
- ``mask_prediction_offset``: 0 when ``logits[:, t]`` predicts the token at ``t`` (BERT-style
  masked LM: mask t, read t); 1 when it predicts the token at ``t + 1`` (GPT-BERT's masked
  next-token prediction: mask t, read t - 1, as the BabyLM ``mntp`` backend does).
- ``block``, ``attention``, ``mlp``: the block's layout and slots, as thrifty's ``model.block``,
  ``model.attention`` and ``model.mlp`` name them (each a dict with a ``name``; absent: the
  Llama layout, so folders written before these fields existed load unchanged):

  - ``block``: ``{"name": "sequential"}`` (pre-norm, attention then MLP) or
    ``{"name": "parallel"}`` (attention and MLP read one shared norm);
  - ``attention``: ``{"name": "mha"}`` or ``{"name": "moa", "experts": E, "share_kv": bool}``
    (BAM's soft mixture of attention experts);
  - ``mlp``: ``{"name": "swiglu"}`` or ``{"name": "moe", "experts": E, "top_k": k,
    "intermediate_size": d_ff, "normalize_top_k": bool, "capacity_factor": float | None}``
    (top-k routed SwiGLU experts; ``intermediate_size`` is each expert's hidden width).
"""

from transformers import PretrainedConfig

LAYOUT = {
    "block": ("sequential", "parallel"),
    "attention": ("mha", "moa", "meta"),
    "mlp": ("swiglu", "moe"),
}


class ThriftyConfig(PretrainedConfig):
    model_type = "thrifty"

    def __init__(
        self,
        vocab_size: int = 8192,
        hidden_size: int = 256,
        intermediate_size: int = 704,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        max_position_embeddings: int = 512,
        rms_norm_eps: float = 1e-5,
        rope_theta: float = 10000.0,
        initializer_range: float = 0.02,
        objective: str = "masked_lm",
        mask_prediction_offset: int = 0,
        mask_token_id: int = 3,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        tie_word_embeddings: bool = True,
        block: dict | None = None,
        attention: dict | None = None,
        mlp: dict | None = None,
        rope_extension: dict | None = None,
        meta_token_id: int = 4,
        **kwargs,
    ) -> None:
        if mask_prediction_offset not in (0, 1):
            raise ValueError(f"mask_prediction_offset must be 0 or 1, got {mask_prediction_offset}")
        slots = {"block": block, "attention": attention, "mlp": mlp}
        for slot, section in slots.items():
            section = dict(section or {"name": LAYOUT[slot][0]})
            if section.get("name") not in LAYOUT[slot]:
                raise ValueError(
                    f"{slot}: name must be one of {', '.join(LAYOUT[slot])}, got {section}"
                )
            setattr(self, slot, section)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.rope_extension = rope_extension
        self.meta_token_id = meta_token_id
        self.initializer_range = initializer_range
        self.objective = objective
        self.mask_prediction_offset = mask_prediction_offset
        self.mask_token_id = mask_token_id
        kwargs.setdefault("use_cache", False)  # no KV cache: every call recomputes the prefix
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
