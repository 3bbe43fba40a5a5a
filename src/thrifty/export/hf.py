"""Export a thrifty checkpoint as a folder that ``transformers`` loads.

thrifty's transformer is the Llama layout (Touvron et al. 2023: RoPE in rotate-half form,
RMSNorm pre-norm, SwiGLU, no biases) with tied embeddings, so a causal model exports as
``LlamaForCausalLM`` by renaming tensors and splitting the fused q/k/v and gate/up projections.
No custom code is needed to load the result:

    AutoModelForCausalLM.from_pretrained(folder); AutoTokenizer.from_pretrained(folder)

Masked and hybrid models attend bidirectionally, which ``LlamaForCausalLM`` cannot do: with
``remote_code=True`` (``thrifty export --remote-code``) they get thrifty's own modeling code and
load with ``trust_remote_code=True`` (see ``remote.py``). Without it a masked LM is refused and a
GPT-BERT model exports as ``LlamaForCausalLM`` for its causal mode only. Models whose block is
not the Llama layout (``model.block=parallel``, ``model.mlp=moe``, ``model.attention=moa``)
have no Llama counterpart at all: they need ``remote_code=True`` whatever their kind, causal
models included, and are refused without it.

The tokenizer prepends ``<s>`` (as thrifty does in training and scoring), so ``tok(text)``
gives the ids the model was trained on; ``add_special_tokens=False`` gives the raw BPE ids.
``thrifty.json`` carries the run's ledger and objective, and says what the logits mean;
``README.md`` says the same for people: the data budget travels with the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import processors

from thrifty.atomic import new_folder
from thrifty.config import to_dict
from thrifty.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, load_tokenizer
from thrifty.errors import UserError
from thrifty.export import remote
from thrifty.export.card import model_card
from thrifty.export.remote import remote_config, remote_state_dict, rope_scaling
from thrifty.model_kind import scoring_backend
from thrifty.runs import LoadedModel, load_model

FORMAT_VERSION = 1
CAUSAL_LOGITS = (
    "LlamaForCausalLM (causal): logits[:, t] predicts the token at position t+1 "
    "(BabyLM backend 'causal')."
)


def _dense(module: torch.nn.Module, where: str) -> torch.Tensor:
    """The (d_out, d_in) matrix of a block linear layer, whatever its parameterization."""
    if not hasattr(module, "dense_weight"):
        raise UserError(f"{where} ({type(module).__name__}) cannot be materialised for export")
    return module.dense_weight().detach().float()


def hf_state_dict(model) -> dict[str, torch.Tensor]:
    """thrifty parameters under LlamaForCausalLM names (fp32, contiguous, no shared storage)."""
    d, ff = model.cfg.d_model, model.cfg.d_ff
    out = {"model.embed_tokens.weight": model.embed.weight.detach().float()}
    for i, block in enumerate(model.blocks):
        pre = f"model.layers.{i}"
        q, k, v = _dense(block.attn.qkv, f"blocks.{i}.attn.qkv").split(d)  # rows [q; k; v]
        gate, up = _dense(block.mlp.gate_up, f"blocks.{i}.mlp.gate_up").split(ff)
        out |= {
            f"{pre}.input_layernorm.weight": block.attn_norm.weight.detach().float(),
            f"{pre}.self_attn.q_proj.weight": q,
            f"{pre}.self_attn.k_proj.weight": k,
            f"{pre}.self_attn.v_proj.weight": v,
            f"{pre}.self_attn.o_proj.weight": _dense(block.attn.out, f"blocks.{i}.attn.out"),
            f"{pre}.post_attention_layernorm.weight": block.mlp_norm.weight.detach().float(),
            f"{pre}.mlp.gate_proj.weight": gate,
            f"{pre}.mlp.up_proj.weight": up,
            f"{pre}.mlp.down_proj.weight": _dense(block.mlp.down, f"blocks.{i}.mlp.down"),
        }
    out["model.norm.weight"] = model.norm.weight.detach().float()
    return {k: v.cpu().contiguous().clone() for k, v in out.items()}


def llama_config(cfg) -> dict:
    """config.json for LlamaForCausalLM; RoPE base and scaling written both the
    transformers<5 way (``rope_theta``, ``rope_scaling``) and the >=5 way (``rope_parameters``)
    so either version reads it."""
    m = cfg.model
    scaling = rope_scaling(m)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": m.vocab_size,
        "hidden_size": m.d_model,
        "intermediate_size": m.d_ff,
        "num_hidden_layers": m.n_layers,
        "num_attention_heads": m.n_heads,
        "num_key_value_heads": m.n_heads,
        "head_dim": m.d_model // m.n_heads,
        "max_position_embeddings": m.max_seq_len,
        "rms_norm_eps": m.norm_eps,
        "rope_theta": m.rope_theta,
        "rope_parameters": {"rope_type": "default", **(scaling or {}), "rope_theta": m.rope_theta},
        "rope_scaling": scaling,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": True,
        "initializer_range": m.init_std,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        "torch_dtype": "float32",
        "dtype": "float32",
        "use_cache": True,
    }


def _tokenizer_files(loaded: LoadedModel, folder: Path) -> None:
    tok = load_tokenizer(loaded.run_dir)
    bos = SPECIAL_TOKENS[BOS_ID]
    # Baked into tokenizer.json for transformers<5, which ignores add_bos_token here.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1", special_tokens=[(bos, BOS_ID)]
    )
    tok.save(str(folder / "tokenizer.json"))
    special = {
        "pad_token": "<pad>",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "mask_token": "<mask>",
        "cls_token": "<cls>",
        "sep_token": "<sep>",
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        # thrifty prepends <s> to every document and sentence; no </s> at the end.
        "add_bos_token": True,
        "add_eos_token": False,
        # Text never turns into special ids (thrifty sets encode_special_tokens).
        "split_special_tokens": True,
        "clean_up_tokenization_spaces": False,
        "model_max_length": loaded.cfg.model.max_seq_len,
        "padding_side": "right",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def _write(loaded: LoadedModel, folder: Path, backend: str | None, remote_code: bool) -> None:
    if remote_code:
        weights = remote_state_dict(loaded.model, _dense)
        config = remote_config(loaded.cfg, backend)
        remote.write_code(folder)
        classes = sorted(config["auto_map"])
        logits = remote.LOGITS[backend]
    else:
        weights, config = hf_state_dict(loaded.model), llama_config(loaded.cfg)
        classes = ["AutoModelForCausalLM"]
        logits = CAUSAL_LOGITS
    save_file(weights, str(folder / "model.safetensors"), {"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID}
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    _tokenizer_files(loaded, folder)
    meta = {
        "format": "thrifty-hf-export",
        "version": FORMAT_VERSION,
        "source_checkpoint": str(loaded.checkpoint.resolve()),
        "weights": loaded.weights,
        "step": loaded.state.get("step"),
        "objective": loaded.cfg.objective,
        "scoring_backend": backend,
        "bos_prepended": True,
        "remote_code": remote_code,
        "architecture": config["architectures"][0],
        "auto_classes": classes,
        "logits": logits,
        "ledger": loaded.ledger(),
        "config": to_dict(loaded.cfg),
    }
    if remote_code:
        meta["mask_prediction_offset"] = config["mask_prediction_offset"]
    (folder / "thrifty.json").write_text(json.dumps(meta, indent=2) + "\n")
    (folder / "README.md").write_text(model_card(meta))


LLAMA_LAYOUT = {slot: names[0] for slot, names in remote.LAYOUT.items()}


def _is_llama_layout(model_cfg) -> bool:
    return all(getattr(model_cfg, slot)["name"] == name for slot, name in LLAMA_LAYOUT.items())


def needs_remote_code(model_cfg, kind: str) -> bool:
    """Whether only the remote-code export computes the model as it was trained: every kind but
    causal attends bidirectionally (GPT-BERT in its masked mode too), and layouts other than
    Llama's have no LlamaForCausalLM counterpart."""
    return scoring_backend(kind) != "causal" or not _is_llama_layout(model_cfg)


def _check_layout(model_cfg, remote_code: bool) -> None:
    """Refuse block slots that the chosen export does not compute: LlamaForCausalLM has only the
    Llama layout; the remote code has the slots in ``remote.LAYOUT``."""
    for slot, supported in remote.LAYOUT.items():
        name = getattr(model_cfg, slot)["name"]
        if name not in supported:
            raise UserError(
                f"model.{slot}={name}: exporting this layout to transformers is not supported "
                f"yet (model.{slot} must be one of {', '.join(supported)})"
            )
        if name != LLAMA_LAYOUT[slot] and not remote_code:
            raise UserError(
                f"model.{slot}={name} has no LlamaForCausalLM counterpart (only "
                f"model.{slot}={LLAMA_LAYOUT[slot]}); pass --remote-code (remote_code=True) to "
                "write modeling code that transformers loads with trust_remote_code=True"
            )


def _check_mode(objective: str, backend: str | None, remote_code: bool, llama: bool) -> None:
    """Refuse exports that would load but compute something else than the model learned."""
    if remote_code and backend == "causal" and llama:
        raise UserError(
            f"{objective!r} models of the Llama layout load as LlamaForCausalLM without custom "
            "code; --remote-code is for masked and hybrid models and for other layouts"
        )
    if not remote_code and backend not in ("causal", "mntp"):
        raise UserError(
            f"{objective!r} models attend bidirectionally, and LlamaForCausalLM would run them "
            "causally (meaningless scores); pass --remote-code (remote_code=True) to write "
            "modeling code that transformers loads with trust_remote_code=True"
        )


def export_hf(
    path: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    remote_code: bool = False,
    ema: bool = False,
) -> Path:
    """Write ``out`` (atomically: temp folder, then rename) from a run or checkpoint folder.

    ``remote_code``: for masked and hybrid models, and for any model whose block is not the
    Llama layout (parallel, moe, moa), also write thrifty's modeling code so that
    ``AutoModelForMaskedLM`` (or ``AutoModelForCausalLM``) ``.from_pretrained(out,
    trust_remote_code=True)`` loads them.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    loaded = load_model(path, "cpu", ema=ema)  # ema: the moving average of the weights
    objective = loaded.cfg.objective["name"]
    backend = scoring_backend(loaded.kind)
    _check_layout(loaded.cfg.model, remote_code)
    _check_mode(objective, backend, remote_code, _is_llama_layout(loaded.cfg.model))
    with new_folder(out) as tmp:
        _write(loaded, tmp, backend, remote_code)
    return out
