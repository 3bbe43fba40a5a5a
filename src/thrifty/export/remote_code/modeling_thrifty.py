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

The block's layout and slots follow ``config.block``, ``config.attention`` and ``config.mlp``
(absent: the Llama layout above):

- ``parallel`` block: x + attn(norm(x)) + mlp(norm(x)) from one shared norm (GPT-J, PaLM), the
  layout BAM upcycles into (Zhang et al. 2024).
- ``moa`` attention: BAM's soft mixture of attention experts, y = Σ_i g_i(x) · Attn_i(x) with
  g = softmax(router(x)) computed in fp32; every expert runs on every token. With ``share_kv``
  the experts bring their own W_Q and W_O and share one W_K, W_V (``kv_proj``, rows [k; v]).
- ``meta`` attention: attention plus a meta-attention sub-layer (Shah et al. 2025) in which
  positions read only the meta-tokens (``config.meta_token_id``, thrifty's ``<cls>``) at or
  before them; exactly zero where there is none, so text without meta-tokens computes the
  plain attention. ``config.rope_extension`` stretches RoPE (linear or YaRN) as thrifty does.
- ``moe`` MLP: top-k routed SwiGLU experts (Switch Transformer, Fedus et al. 2022; Mixtral):
  router softmax in fp32, the ``top_k`` largest weights (rescaled to sum to 1 when
  ``normalize_top_k``), y = Σ over chosen experts of weight · expert(x). With a
  ``capacity_factor`` each expert serves at most ceil(capacity_factor · T · top_k / experts)
  tokens per row (T: the row's length, padding included), earlier positions first, and a
  dropped assignment adds nothing. thrifty applies this cap in evaluation as well as in
  training, so it is part of the function the model computes and is applied here too: a row's
  logits match thrifty's ``model.eval()`` forward exactly when it is fed the same (padded) row.
  Without a capacity factor (the default) no token is ever dropped. The training-only parts
  (load-balance and z-losses, routing traces) are left out.

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
from .layers_thrifty import BLOCKS, ThriftyRMSNorm, attention_bias, rope_tables


class ThriftyPreTrainedModel(PreTrainedModel):
    config_class = ThriftyConfig
    base_model_prefix = "model"
    _no_split_modules = ["ThriftyBlock", "ThriftyParallelBlock"]


class ThriftyModel(ThriftyPreTrainedModel):
    """The backbone: final (normed) hidden states, bidirectional unless ``causal=True``."""

    def __init__(self, config: ThriftyConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        block = BLOCKS[config.block["name"]]
        self.layers = nn.ModuleList(block(config) for _ in range(config.num_hidden_layers))
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
        cos, sin = rope_tables(
            head_dim, T, self.config.rope_theta, x.device, self.config.rope_extension
        )
        mask = attention_bias(attention_mask, T, causal)
        states = [] if output_hidden_states else None
        for layer in self.layers:
            if states is not None:
                states.append(x)
            x = layer(x, cos, sin, causal, mask, input_ids)
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
