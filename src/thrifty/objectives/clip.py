"""``clip``: contrastive image–text pretraining (CLIP, Radford et al. 2021, arXiv 2103.00020).

The run's model (``patches`` stem) is the image tower; its feature is the mean of the final
hidden states (``mean_features``). The text tower is owned here: thrifty's own ``Transformer``
with the ``tokens`` stem, ``text_layers`` x ``text_width``, reading the caption causally; its
feature is the final hidden state at the caption's last token, the ``</s>`` that ends it (the
paper's EOT feature; causal attention means it has read the whole caption and no padding).
Linear projections without bias map both features to ``embed_dim``, and after L2
normalisation the logits are ``exp(t) · I_e T_eᵀ`` (N x N), ``t`` learnable, initialised to
log(1 / ``init_temperature``) and clipped so that exp(t) <= ``max_logit_scale`` (100 in the
paper). The loss of pair i is ½ [CE(row i, i) + CE(column i, i)]: the symmetric InfoNCE.

The negatives are the global micro-batch's other pairs: under torchrun each rank gathers every
rank's embeddings (``thrifty.objectives.cross_rank``, differentiable) and scores its own pairs
against all of them, so a 2-process step equals the 1-process step. Captions that repeat in a
batch (digits' captions do) are counted as negatives as CLIP counts them. The text tower's
vocabulary is ``model.vocab_size``, which the ``pairs`` data source sets from its caption
tokenizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.bounds import bounded
from thrifty.config import ModelConfig
from thrifty.errors import UserError
from thrifty.models.stem.patches import mean_features
from thrifty.models.transformer import Transformer
from thrifty.objectives import cross_rank
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output, row_term
from thrifty.objectives.mae import patch_stem


def clip_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, rows=None
) -> torch.Tensor:
    """Symmetric InfoNCE per pair from (N, D) normalised image and text embeddings, for the
    pairs at ``rows`` (default: all N): pair i's image against every text and its text
    against every image."""
    rows = torch.arange(len(image), device=image.device) if rows is None else rows
    to_text = F.cross_entropy(logit_scale * image[rows] @ text.T, rows, reduction="none")
    to_image = F.cross_entropy(logit_scale * text[rows] @ image.T, rows, reduction="none")
    return 0.5 * (to_text + to_image)


class ClipHeads(nn.Module):
    """What CLIP trains besides the image tower: text tower, both projections, temperature."""

    def __init__(self, cfg, model_cfg: ModelConfig) -> None:
        super().__init__()
        text_cfg = ModelConfig(
            d_model=cfg.text_width,
            n_layers=cfg.text_layers,
            n_heads=cfg.text_heads,
            vocab_size=model_cfg.vocab_size,
            max_seq_len=cfg.caption_len,
            norm_eps=model_cfg.norm_eps,
            init_std=model_cfg.init_std,
        )
        self.text = Transformer(text_cfg)
        self.image_proj = nn.Linear(model_cfg.d_model, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(cfg.text_width, cfg.embed_dim, bias=False)
        for proj in (self.image_proj, self.text_proj):  # open_clip's width^-1/2 init
            nn.init.normal_(proj.weight, 0.0, proj.in_features**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))
        self.max_log_scale = math.log(cfg.max_logit_scale)

    def scale(self) -> torch.Tensor:
        """exp(t) with t clipped at log(max_logit_scale): clamped in the forward pass, so a t
        pushed past the cap gets no gradient to go further and the logits never exceed it."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def embed_text(self, captions: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """(B, D) normalised embeddings of right-padded captions (B, L), ``padding`` True at
        real tokens: the hidden state at each caption's last token."""
        hidden = self.text(captions, causal=True)  # (B, L, C); pads come after, unseen
        last = padding.sum(1) - 1
        feature = hidden[torch.arange(len(captions), device=captions.device), last]
        return F.normalize(self.text_proj(feature).float(), dim=-1)

    def embed_image(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(features).float(), dim=-1)


@OBJECTIVES.register("clip")
class Clip(Objective):
    kind = "encoder"

    @dataclass(kw_only=True)
    class Config:
        embed_dim: int = bounded(32, ge=1)
        """Width of the joint image–text space the loss compares."""
        text_width: int = bounded(64, ge=2)
        """Width of the owned text transformer."""
        text_layers: int = bounded(2, ge=1)
        """Blocks of the owned text transformer."""
        text_heads: int = bounded(2, ge=1)
        """Attention heads of the owned text transformer."""
        caption_len: int = bounded(16, ge=2)
        """Most tokens of a caption (with its ``</s>``) the text tower reads; its FLOPs are
        counted at this length."""
        init_temperature: float = bounded(0.07, gt=0)
        """Softmax temperature at init: t starts at log(1 / init_temperature)."""
        max_logit_scale: float = bounded(100.0, gt=1)
        """The cap on exp(t), the inverse temperature (100 in the paper)."""

    def __init__(self, cfg, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        stem = patch_stem(model)
        self.num_patches = stem.num_patches
        if model.cfg.vocab_size is None:
            raise UserError(
                "objective clip needs the caption vocabulary (model.vocab_size): set data.path "
                "to a prepared pairs set (thrifty prepare pairs:digits)"
            )
        if 1 / cfg.init_temperature > cfg.max_logit_scale:
            raise UserError(
                f"objective.init_temperature={cfg.init_temperature} starts past "
                f"objective.max_logit_scale={cfg.max_logit_scale}; raise it"
            )
        if cfg.text_width % cfg.text_heads or (cfg.text_width // cfg.text_heads) % 2:
            raise UserError(
                f"objective.text_width={cfg.text_width} must split into "
                f"objective.text_heads={cfg.text_heads} heads of even width"
            )
        self.owned = ClipHeads(cfg, model.cfg).to(stem.position.device)

    def embeddings(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) normalised image and text embeddings of a batch of pairs."""
        fields = batch.inputs
        if "captions" not in fields:
            raise UserError(
                "objective clip needs image–caption pairs: set data.path to a prepared pairs "
                "set (thrifty prepare pairs:digits)"
            )
        captions = fields["captions"]
        if captions.shape[1] > self.cfg.caption_len:
            raise UserError(
                f"objective.caption_len={self.cfg.caption_len} is below the "
                f"{captions.shape[1]}-token captions of the data; raise it"
            )
        image = self.owned.embed_image(mean_features(self.model, fields["images"], batch.progress))
        return image, self.owned.embed_text(captions, fields["caption_padding"])

    def __call__(self, batch: Batch) -> Output:
        image, text = self.embeddings(batch)
        scale = self.owned.scale()
        all_image, first = cross_rank.gather(image)
        all_text, _ = cross_rank.gather(text)
        rows = torch.arange(first, first + len(image), device=image.device)
        losses = clip_loss(all_image, all_text, scale, rows)  # (B,): this rank's pairs
        term, per_row = row_term(losses[:, None], batch.weights)
        loss = term.value
        metrics = {"loss": loss.detach(), "logit_scale": scale.detach()}
        return Output(loss, metrics, per_row.detach(), {"clip": term})

    def head_fraction(self) -> float:
        return 0.0

    def extra_flops_per_token(self, seq_len: int) -> float:
        # per patch position: one caption's text tower and both projections per image
        heads = self.owned
        text = heads.text.flops_per_token(self.cfg.caption_len, 0.0) * self.cfg.caption_len
        projections = 6.0 * (heads.image_proj.weight.numel() + heads.text_proj.weight.numel())
        return (text + projections) / self.num_patches
