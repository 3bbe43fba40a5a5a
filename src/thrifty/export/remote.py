"""The opt-in ``trust_remote_code`` export: masked and hybrid models, and layouts Llama lacks.

``LlamaForCausalLM`` always attends causally, so it cannot run a masked LM (BERT-style,
Devlin et al. 2019) or GPT-BERT's bidirectional half (Charpentier & Samuel 2024); nor does it
have a parallel block, a mixture of experts (Fedus et al. 2022) or BAM's soft mixture of
attention (Zhang et al. 2024), so models with those slots need this export whatever their
kind, causal ones included. With ``remote_code=True`` the export folder gets
``configuration_thrifty.py``, ``layers_thrifty.py`` and ``modeling_thrifty.py`` (copied from
``remote_code/``; torch + transformers only) and an ``auto_map`` in config.json, so that

    AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)

loads the model with bidirectional attention (and, for ``gpt_bert`` and causal models,
``AutoModelForCausalLM`` with causal attention). This writes executable code into the folder,
which is why it is opt-in. What the logits mean is in ``LOGITS`` and the module docstring of
``modeling_thrifty.py``; config.json's ``block`` / ``attention`` / ``mlp`` sections say which
layout it computes (``configuration_thrifty.py``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from thrifty.data.tokenizer import BOS_ID, EOS_ID, MASK_ID, META_ID, PAD_ID
from thrifty.models.attention import ATTENTIONS
from thrifty.models.attention.meta import MetaAttention
from thrifty.models.attention.moa import MixtureOfAttention, QueryExpert
from thrifty.models.block.parallel import ParallelBlock
from thrifty.models.mlp import MLPS
from thrifty.models.mlp.moe import MixtureOfExperts

SOURCE = Path(__file__).parent / "remote_code"
FILES = ("configuration_thrifty.py", "layers_thrifty.py", "modeling_thrifty.py")
# The block slots modeling_thrifty.py computes (its configuration's LAYOUT); the first of each
# is the Llama layout, which is also what a config.json without the slot means.
LAYOUT = {
    "block": ("sequential", "parallel"),
    "attention": ("mha", "moa", "meta"),
    "mlp": ("swiglu", "moe"),
}
# Scoring backend -> position offset between a masked token and the output that predicts it.
# ``None``: a discriminator (ELECTRA-style), which has no language-model output to read; a
# causal model has no masked reading, and its causal output at t predicts t+1.
OFFSETS = {"mlm": 0, "mntp": 1, "causal": 1, None: 0}
LOGITS = {
    "causal": (
        "ThriftyForCausalLM (causal): logits[:, t] predicts the token at position t+1 "
        "(BabyLM backend 'causal')."
    ),
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
    if backend in ("mntp", "causal"):  # GPT-BERT is also a causal LM; a masked LM is not
        auto["AutoModelForCausalLM"] = "modeling_thrifty.ThriftyForCausalLM"
    return auto


def _layout(m) -> dict:
    """config.json's ``block`` / ``attention`` / ``mlp`` sections, thrifty's defaults filled in
    (training-only settings such as the MoE loss weights are left out)."""
    out = {slot: {"name": getattr(m, slot)["name"]} for slot in LAYOUT}
    if m.attention["name"] == "moa":
        moa = ATTENTIONS.config(m.attention, "model.attention")
        out["attention"] |= {"experts": moa.experts, "share_kv": moa.share_kv}
    if m.attention["name"] == "meta":
        meta = ATTENTIONS.config(m.attention, "model.attention")
        out["attention"] |= {"queries": meta.queries, "rope": meta.rope}
    if m.mlp["name"] == "moe":
        moe = MLPS.config(m.mlp, "model.mlp")
        out["mlp"] |= {
            "experts": moe.experts,
            "top_k": moe.top_k,
            "intermediate_size": moe.d_ff or m.d_ff,
            "normalize_top_k": moe.normalize_top_k,
            # thrifty caps expert load in evaluation too, so the exported model must as well
            "capacity_factor": moe.capacity_factor,
        }
    return out


def rope_scaling(m) -> dict | None:
    """``transformers``' ``rope_scaling`` section for the model's context extension, or None;
    the same rule (``thrifty.models.rope``), so the export computes the same positions."""
    if m.rope_scaling == "none" or m.rope_factor == 1.0:
        return None
    original = m.rope_original_len or round(m.max_seq_len / m.rope_factor)
    return {
        "rope_type": m.rope_scaling,
        "factor": m.rope_factor,
        "original_max_position_embeddings": original,
    }


def remote_config(cfg, backend: str | None) -> dict:
    """config.json for the remote-code classes (``ThriftyConfig`` fields)."""
    m = cfg.model
    auto = _classes(backend)
    main = next(
        auto[key].split(".")[1]
        for key in ("AutoModelForMaskedLM", "AutoModelForCausalLM", "AutoModel")
        if key in auto
    )
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
        "rope_extension": rope_scaling(m),  # not rope_scaling, which transformers rewrites
        "meta_token_id": META_ID,
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
        **_layout(m),
    }


def remote_state_dict(model, dense) -> dict[str, torch.Tensor]:
    """thrifty parameters under the names of ``modeling_thrifty.py`` (q/k/v, k/v and gate/up
    stay fused, as in thrifty, so the computation is the same one). ``dense`` materialises a
    layer; routers are plain linears and go as they are."""
    out = {"model.embed_tokens.weight": model.embed.weight.detach().float()}
    for i, block in enumerate(model.blocks):
        pre, at = f"model.layers.{i}", f"blocks.{i}"
        parallel = isinstance(block, ParallelBlock)  # one norm feeds attention and MLP
        norm = block.norm if parallel else block.attn_norm
        out[f"{pre}.input_layernorm.weight"] = norm.weight.detach().float()
        out |= _attention(block.attn, f"{pre}.self_attn", f"{at}.attn", dense)
        if not parallel:
            out[f"{pre}.post_attention_layernorm.weight"] = block.mlp_norm.weight.detach().float()
        out |= _mlp(block.mlp, f"{pre}.mlp", f"{at}.mlp", dense)
    out["model.norm.weight"] = model.norm.weight.detach().float()
    return {k: v.cpu().contiguous().clone() for k, v in out.items()}


def _attention(attn, pre: str, at: str, dense) -> dict[str, torch.Tensor]:
    """An attention slot (or one of its experts) under ``pre``; ``at`` is its thrifty name."""
    if isinstance(attn, MixtureOfAttention):
        out = {f"{pre}.router.weight": attn.router.weight.detach().float()}
        if attn.share_kv:
            out[f"{pre}.kv_proj.weight"] = dense(attn.kv, f"{at}.kv")  # rows [k; v]
        for j, expert in enumerate(attn.experts):
            out |= _attention(expert, f"{pre}.experts.{j}", f"{at}.experts.{j}", dense)
        return out
    if isinstance(attn, QueryExpert):
        inner = {"q_proj": dense(attn.q, f"{at}.q")}
    else:
        inner = {"qkv_proj": dense(attn.qkv, f"{at}.qkv")}  # rows [q; k; v]
    inner["o_proj"] = dense(attn.out, f"{at}.out")
    if isinstance(attn, MetaAttention):
        inner["meta_qkv_proj"] = dense(attn.meta_qkv, f"{at}.meta_qkv")
        inner["meta_o_proj"] = dense(attn.meta_out, f"{at}.meta_out")
    return {f"{pre}.{name}.weight": w for name, w in inner.items()}


def _mlp(mlp, pre: str, at: str, dense) -> dict[str, torch.Tensor]:
    """An MLP slot (or one of its SwiGLU experts) under ``pre``."""
    if isinstance(mlp, MixtureOfExperts):
        out = {f"{pre}.router.weight": mlp.router.weight.detach().float()}
        for j, expert in enumerate(mlp.experts):
            out |= _mlp(expert, f"{pre}.experts.{j}", f"{at}.experts.{j}", dense)
        return out
    return {
        f"{pre}.gate_up_proj.weight": dense(mlp.gate_up, f"{at}.gate_up"),
        f"{pre}.down_proj.weight": dense(mlp.down, f"{at}.down"),
    }


def write_code(folder: Path) -> None:
    for name in FILES:
        shutil.copyfile(SOURCE / name, folder / name)
