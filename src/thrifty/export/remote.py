"""The opt-in ``trust_remote_code`` export of masked and hybrid models.

``LlamaForCausalLM`` always attends causally, so it cannot run a masked LM (BERT-style,
Devlin et al. 2019) or GPT-BERT's bidirectional half (Charpentier & Samuel 2024). With
``remote_code=True`` the export folder gets ``configuration_thrifty.py`` and
``modeling_thrifty.py`` (copied from ``remote_code/``; torch + transformers only) and an
``auto_map`` in config.json, so that

    AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)

loads the model with bidirectional attention (and, for ``gpt_bert``, ``AutoModelForCausalLM``
with causal attention). This writes executable code into the folder, which is why it is opt-in.
What the logits mean is in ``LOGITS`` and the module docstring of ``modeling_thrifty.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from thrifty.data.tokenizer import BOS_ID, EOS_ID, MASK_ID, PAD_ID

SOURCE = Path(__file__).parent / "remote_code"
FILES = ("configuration_thrifty.py", "modeling_thrifty.py")
# Scoring backend -> position offset between a masked token and the output that predicts it.
# ``None``: a discriminator (ELECTRA-style), which has no language-model output to read.
OFFSETS = {"mlm": 0, "mntp": 1, None: 0}
LOGITS = {
    "mlm": (
        "ThriftyForMaskedLM (bidirectional): logits[:, t] predicts the token at position t. "
        "Mask token t with <mask> and read position t (BabyLM backend 'mlm')."
    ),
    "mntp": (
        "ThriftyForMaskedLM (bidirectional): logits[:, t] predicts the token at position t+1 "
        "(masked next-token prediction). Mask token t with <mask> and read position t-1 "
        "(BabyLM backend 'mntp', which applies the shift itself; logits are never shifted). "
        "ThriftyForCausalLM (causal): logits[:, t] predicts the token at t+1."
    ),
    None: (
        "No logits: a replaced-token-detection discriminator has no language-model head, so "
        "only ThriftyModel (bidirectional hidden states, for fine-tuning) is provided."
    ),
}


def _classes(backend: str | None) -> dict[str, str]:
    """auto_map: which class each Auto* factory builds."""
    auto = {"AutoConfig": "configuration_thrifty.ThriftyConfig"}
    auto["AutoModel"] = "modeling_thrifty.ThriftyModel"
    if backend in ("mlm", "mntp"):
        auto["AutoModelForMaskedLM"] = "modeling_thrifty.ThriftyForMaskedLM"
    if backend == "mntp":  # GPT-BERT is also a causal LM; a masked LM is not
        auto["AutoModelForCausalLM"] = "modeling_thrifty.ThriftyForCausalLM"
    return auto


def remote_config(cfg, backend: str | None) -> dict:
    """config.json for the remote-code classes (``ThriftyConfig`` fields)."""
    m = cfg.model
    auto = _classes(backend)
    main = "ThriftyForMaskedLM" if "AutoModelForMaskedLM" in auto else "ThriftyModel"
    return {
        "architectures": [main],
        "model_type": "thrifty",
        "auto_map": auto,
        "vocab_size": m.vocab_size,
        "hidden_size": m.d_model,
        "intermediate_size": m.d_ff,
        "num_hidden_layers": m.n_layers,
        "num_attention_heads": m.n_heads,
        "max_position_embeddings": m.max_seq_len,
        "rms_norm_eps": m.norm_eps,
        "rope_theta": m.rope_theta,
        "initializer_range": m.init_std,
        "objective": cfg.objective["name"],
        "mask_prediction_offset": OFFSETS[backend],
        "mask_token_id": MASK_ID,
        "pad_token_id": PAD_ID,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "tie_word_embeddings": True,
        "use_cache": False,
        "torch_dtype": "float32",
        "dtype": "float32",
    }


def remote_state_dict(model, dense) -> dict[str, torch.Tensor]:
    """thrifty parameters under the names of ``modeling_thrifty.py`` (q/k/v and gate/up stay
    fused, as in thrifty, so the computation is the same one). ``dense`` materialises a layer."""
    out = {"model.embed_tokens.weight": model.embed.weight.detach().float()}
    for i, block in enumerate(model.blocks):
        pre = f"model.layers.{i}"
        out |= {
            f"{pre}.input_layernorm.weight": block.attn_norm.weight.detach().float(),
            f"{pre}.self_attn.qkv_proj.weight": dense(block.attn.qkv, f"blocks.{i}.attn.qkv"),
            f"{pre}.self_attn.o_proj.weight": dense(block.attn.out, f"blocks.{i}.attn.out"),
            f"{pre}.post_attention_layernorm.weight": block.mlp_norm.weight.detach().float(),
            f"{pre}.mlp.gate_up_proj.weight": dense(block.mlp.gate_up, f"blocks.{i}.mlp.gate_up"),
            f"{pre}.mlp.down_proj.weight": dense(block.mlp.down, f"blocks.{i}.mlp.down"),
        }
    out["model.norm.weight"] = model.norm.weight.detach().float()
    return {k: v.cpu().contiguous().clone() for k, v in out.items()}


def write_code(folder: Path) -> None:
    for name in FILES:
        shutil.copyfile(SOURCE / name, folder / name)
