"""thrifty's transformer for ``transformers``, for masked and hybrid (GPT-BERT) models.

Written into an export folder by ``thrifty export --remote-code`` and loaded with

    AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)   # bidirectional
    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)   # causal (gpt_bert)
    AutoModel.from_pretrained(folder, trust_remote_code=True)              # hidden states
    AutoTokenizer.from_pretrained(folder, trust_remote_code=True)          # reads config.json

It needs only torch (>= 2.4) and transformers, never thrifty. The network is thrifty's own
(Llama layout, Touvron et al. 2023): token embedding, RoPE in rotate-half form, RMSNorm
pre-norm computed in fp32, SwiGLU MLP, no biases, a final RMSNorm and an output projection tied
to the embedding. Attention is bidirectional or causal per call, as in GPT-BERT (Charpentier &
Samuel 2024), where one set of weights serves both.

What the logits mean. ``logits[:, t]`` is always the output read at position ``t``; this module
never shifts it. ``config.mask_prediction_offset`` says which token that output predicts:

- ``0`` (``masked_lm``, BERT-style MLM): replace token ``t`` by ``<mask>`` (id
  ``config.mask_token_id``) with bidirectional attention and read ``logits[:, t]``: the BabyLM
  ``mlm`` backend (pseudo-log-likelihood, Salazar et al. 2020).
- ``1`` (``gpt_bert``, masked next-token prediction): replace token ``t`` by ``<mask>`` and read
  ``logits[:, t - 1]``, the same shift a causal LM uses: the BabyLM ``mntp`` backend, which
  applies this shift itself. ``<s>`` at position 0 is never masked and predicts the first word.
- ``ThriftyForCausalLM`` (causal attention): ``logits[:, t]`` predicts the token at ``t + 1``.
- ELECTRA-style discriminators (``objective`` ``electra`` or ``mcl``) have no language-model
  head: their folders map only ``AutoModel`` (hidden states, for fine-tuning).

``labels`` follow the ``transformers`` convention (aligned with ``input_ids``, -100 ignored);
the loss applies the offset above. Inputs start with ``<s>`` (id 1), which the exported
tokenizer prepends. ``attention_mask`` (1 = real token) hides padded keys from every query;
positions count from column 0, so pad on the right as thrifty does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput, MaskedLMOutput

from .configuration_thrifty import ThriftyConfig


class ThriftyRMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).type_as(x)


def rope_tables(head_dim: int, length: int, theta: float, device) -> tuple[torch.Tensor, ...]:
    """cos/sin (length, head_dim), computed in float64 on the CPU as thrifty does."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float().to(device), angles.sin().float().to(device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class ThriftyAttention(nn.Module):
    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.n_heads = config.num_attention_heads
        self.qkv_proj = nn.Linear(d, 3 * d, bias=False)  # rows [q; k; v]
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, causal: bool, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv_proj(x).view(B, T, 3, self.n_heads, C // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        q, k = apply_rope(q, cos, sin).type_as(v), apply_rope(k, cos, sin).type_as(v)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal and mask is None
        )
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class ThriftyMLP(nn.Module):
    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__()
        self.d_ff = config.intermediate_size
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * self.d_ff, bias=False)
        self.down_proj = nn.Linear(self.d_ff, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).split(self.d_ff, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class ThriftyBlock(nn.Module):
    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__()
        self.input_layernorm = ThriftyRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = ThriftyAttention(config)
        self.post_attention_layernorm = ThriftyRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = ThriftyMLP(config)

    def forward(self, x, cos, sin, causal, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, causal, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


def attention_bias(attention_mask: torch.Tensor | None, T: int, causal: bool):
    """Boolean (B, 1, T, T) mask (True = may attend), or None when nothing is padded.

    A query always sees itself, so rows of padding never go empty (their outputs are unused).
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None
    device = attention_mask.device
    allowed = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=device).tril()
    return allowed | torch.eye(T, dtype=torch.bool, device=device)


class ThriftyPreTrainedModel(PreTrainedModel):
    config_class = ThriftyConfig
    base_model_prefix = "model"
    _no_split_modules = ["ThriftyBlock"]


class ThriftyModel(ThriftyPreTrainedModel):
    """The backbone: final (normed) hidden states, bidirectional unless ``causal=True``."""

    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(ThriftyBlock(config) for _ in range(config.num_hidden_layers))
        self.norm = ThriftyRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        causal: bool = False,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        T = x.shape[1]
        if T > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {T} tokens exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}"
            )
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        cos, sin = rope_tables(head_dim, T, self.config.rope_theta, x.device)
        mask = attention_bias(attention_mask, T, causal)
        states = [] if output_hidden_states else None
        for layer in self.layers:
            if states is not None:
                states.append(x)
            x = layer(x, cos, sin, causal, mask)
        x = self.norm(x)
        if states is not None:
            states.append(x)
        out = BaseModelOutput(
            last_hidden_state=x, hidden_states=tuple(states) if states is not None else None
        )
        return out.to_tuple() if return_dict is False else out


class _ThriftyLM(ThriftyPreTrainedModel):
    """Backbone plus the tied LM head (computed from the embedding; there is no lm_head)."""

    causal = False

    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__(config)
        self.model = ThriftyModel(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def _run(self, input_ids, attention_mask, inputs_embeds, output_hidden_states):
        base = self.model(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            causal=self.causal,
            output_hidden_states=output_hidden_states,
        )
        logits = F.linear(base.last_hidden_state, self.model.embed_tokens.weight)  # (B, T, V)
        return base, logits

    @staticmethod
    def _loss(logits: torch.Tensor, labels: torch.Tensor, offset: int) -> torch.Tensor:
        """Cross-entropy of labels aligned with input_ids, read ``offset`` positions earlier."""
        T = logits.shape[1]
        logits, labels = logits[:, : T - offset], labels[:, offset:].to(logits.device)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100
        )


class ThriftyForMaskedLM(_ThriftyLM):
    """Bidirectional attention; see the module docstring for what ``logits[:, t]`` predicts."""

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        base, logits = self._run(input_ids, attention_mask, inputs_embeds, output_hidden_states)
        loss = None
        if labels is not None:
            loss = self._loss(logits, labels, self.config.mask_prediction_offset)
        out = MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_dict is False else out


class ThriftyForCausalLM(_ThriftyLM, GenerationMixin):
    """Causal attention: ``logits[:, t]`` predicts the token at ``t + 1`` (no KV cache)."""

    causal = True

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        base, logits = self._run(input_ids, attention_mask, inputs_embeds, output_hidden_states)
        loss = self._loss(logits, labels, 1) if labels is not None else None
        out = CausalLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_dict is False else out

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        # Without a KV cache every step reads the whole prefix.
        return {"input_ids": input_ids, "attention_mask": attention_mask}
