"""``electra``: replaced-token detection (Clark et al. 2020) with DeBERTaV3's GDES (He et al. 2021).

A small generator (masked LM) fills ~15% masked positions with samples; the discriminator — the
run's model, the one that is kept, exported and fine-tuned — labels every token "original" or
"replaced". Loss = L_MLM(generator) + λ·L_RTD(discriminator), λ = 50. A sample that equals the
original token counts as original (labels = ``input != corrupted``). Sampling is at temperature
1 from the generator's logits, with uniforms from per-row streams keyed by the global sample
(``randomness.py``), with no gradient through it.

The generator, its LM head, the RTD head and GDES's E_Δ live in ``self.owned`` (one module the
loop optimizes, clips, averages and checkpoints as ``objective.safetensors``).

Embedding sharing across widths. The generator is narrower than the discriminator (width 1/4 by
default, same depth: ELECTRA's ``generator_hidden_size = 0.25``, ``generator_layers = 1.0``).
thrifty's transformer has no separate embedding size, so the shared table is the
discriminator's, (V, d_model), and the generator reads it through projections, as ELECTRA does
when embedding and hidden sizes differ: a linear map d_model -> d_G on the way in
(``embeddings_project``) and a dense d_G -> d_model + GELU + norm head before the logits against
the table. The generator is built the same way in every sharing mode, so the modes differ only
in who owns which table:

- ``none`` (NES): the generator has its own table E_G, initialised as a copy of the
  discriminator's; each loss updates only its own network's table.
- ``es``: one table, the discriminator's ``embed.weight``; both losses reach it.
- ``gdes``: E_D = sg(E_G) + E_Δ with E_Δ = 0 at init. E_G is trained by the MLM loss only; the
  RTD loss reaches E_Δ (and the rest of the discriminator) only. The discriminator's
  ``embed.weight`` is not trained directly: it always holds E_G + E_Δ whenever anything reads
  it (a forward outside the objective, or ``state_dict`` — so ``model.safetensors``, export,
  ``load_model`` and fine-tuning see the folded embedding, as DeBERTaV3 does after training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from thrifty.data.tokenizer import NUM_SPECIAL, PAD_ID
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer
from thrifty.objectives.base import OBJECTIVES, Batch, LossTerm, Objective, Output, combine
from thrifty.objectives.masking import Masking, mask_tokens
from thrifty.objectives.positions import Positions
from thrifty.objectives.randomness import RowRandom
from thrifty.objectives.rtd import (
    Corruption,
    Detection,
    ElectraParts,
    Term,
    detection_metrics,
    row_mean,
)
from thrifty.transfer import to_device


@OBJECTIVES.register("electra")
class Electra(Objective):
    kind = "discriminator"
    """A discriminator has no token log-probs to score with; see ``thrifty eval``."""

    @dataclass(kw_only=True)
    class Config:
        mask_rate: float = 0.15
        """Share of tokens the generator predicts and resamples (0.25 for ELECTRA-Large)."""
        masking: Masking = field(
            default_factory=lambda: Masking(span=False, random_fraction=0.0, keep_fraction=0.15)
        )
        """ELECTRA's code: 85% of chosen positions become <mask>, 15% stay, none random."""
        rtd_weight: float = 50.0
        """λ, the weight of the discriminator loss (ELECTRA 50; DeBERTaV3's code 10)."""
        generator_width: float = 0.25
        """Generator d_model as a fraction of the discriminator's (paper: 1/4 to 1/2)."""
        generator_depth: float = 1.0
        """Generator layers as a fraction of the discriminator's (ELECTRA's code: 1.0)."""
        embedding_sharing: Literal["none", "es", "gdes"] = "es"
        """none: separate tables; es: one shared table (ELECTRA); gdes: E_D = sg(E_G) + E_Δ."""
        temperature: float = 1.0
        """Sampling temperature of the generator's replacements."""

        def __post_init__(self) -> None:
            if self.temperature <= 0:
                raise UserError(f"objective.temperature={self.temperature} must be positive")
            if not 0 < self.generator_width <= 1 or not 0 < self.generator_depth <= 1:
                raise UserError(
                    "objective.generator_width and objective.generator_depth must lie in (0, 1]"
                )

    def __init__(self, cfg: Config, model: Transformer, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        self.disc: Transformer = getattr(model, "_orig_mod", model)  # behind torch.compile
        self.owned = ElectraParts(cfg, self.disc).to(self.disc.embed.weight.device)
        self._swapped = False
        if cfg.embedding_sharing == "gdes":
            self._setup_gdes()

    # ---- GDES: E_D = sg(E_G) + E_Δ
    def _setup_gdes(self) -> None:
        weight = self.disc.embed.weight
        weight.requires_grad_(False)  # trained through E_Δ; this copy is only what others read
        self._embed_key = next(n for n, p in self.model.named_parameters() if p is weight)
        self.disc.register_state_dict_pre_hook(lambda *_: self.fold())
        self.disc.embed.register_forward_pre_hook(lambda *_: None if self._swapped else self.fold())
        self.fold()

    def disc_table(self) -> torch.Tensor:
        """E_D = sg(E_G) + E_Δ, differentiable in E_Δ only."""
        return self.owned.gen_embed.detach() + self.owned.embed_delta

    @torch.no_grad()
    def fold(self) -> None:
        """Write E_G + E_Δ into the discriminator's ``embed.weight`` (what export reads)."""
        self.disc.embed.weight.copy_(self.owned.gen_embed + self.owned.embed_delta)

    def discriminator(self, ids: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, C) of the discriminator on ``ids``, bidirectional."""
        if self.cfg.embedding_sharing != "gdes":
            return self.model(ids, causal=False)
        self._swapped = True
        try:
            params = {self._embed_key: self.disc_table()}
            return torch.func.functional_call(self.model, params, (ids,), {"causal": False})
        finally:
            self._swapped = False

    # ---- the two networks
    def sample(self, logits: torch.Tensor, at: Positions, random: RowRandom) -> torch.Tensor:
        """One token per row of (N, V) logits at the configured temperature, never a special.

        The N rows are the ``at`` positions of a (B, T) batch, in row-major order. Inverse-CDF
        sampling with one uniform per position from the batch row's own CPU stream (drawn for
        every position, used at ``at``), so runs are reproducible on any device and world size
        and the stream does not depend on V.
        """
        logits = logits.detach().float() / self.cfg.temperature
        logits[:, :NUM_SPECIAL] = float("-inf")
        cdf = torch.softmax(logits, dim=-1).cumsum(-1)  # (N, V)
        u = random.rand(at.mask.shape[1]).flatten()[at.host]  # (N,), on the host
        u = to_device(u, logits.device)
        picked = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(1)
        return picked.clamp(max=logits.shape[1] - 1)

    def generator_logits(self, masked: torch.Tensor, at: Positions) -> torch.Tensor:
        """(N, V) fp32 generator logits at the ``at`` positions of ``masked`` (B, T)."""
        parts = self.owned
        hidden = parts.generator(masked, causal=False)  # (B, T, d_G)
        return parts.gen_head(at.take(hidden), parts.table()).float()

    def generate(
        self,
        ids: torch.Tensor,
        masked: torch.Tensor,
        chosen: Positions,
        weights: torch.Tensor | None,
        random: RowRandom,
        base: torch.Tensor | None = None,
    ) -> Corruption:
        """Generator MLM loss of predicting ``ids`` from ``masked`` at ``chosen``, and ``base``
        (default ``ids``) with samples (drawn from ``random``) written there; labels compare
        with ``ids``."""
        logits = self.generator_logits(masked, chosen)
        targets = chosen.take(ids)
        losses = F.cross_entropy(logits, targets, reduction="none")
        losses = chosen.put(torch.zeros(ids.shape, dtype=logits.dtype, device=ids.device), losses)
        gen = row_mean(losses, chosen.mask, weights)
        corrupted = chosen.put(ids if base is None else base, self.sample(logits, chosen, random))
        with torch.no_grad():
            hits = (logits.argmax(-1) == targets).float()
            acc = hits.mean() if len(chosen) else hits.new_zeros(())
        return Corruption(masked, chosen.mask, corrupted, corrupted != ids, gen, acc)

    def corrupt(self, batch: Batch) -> Corruption:
        """Mask the batch's inputs with the shared masking module (on the host, against the
        batch's host copy), predict with the generator, sample."""
        ids = batch.ids[:, :-1]
        masked, chosen = mask_tokens(
            batch.on_host()[:, :-1],
            self.cfg.mask_rate,
            self.cfg.masking,
            self.disc.cfg.vocab_size,
            self.random(batch, "mask"),
        )
        masked, chosen = to_device(masked, ids.device), Positions.drawn(chosen, ids.device)
        return self.generate(ids, masked, chosen, batch.weights, self.random(batch, "sample"))

    def detect(
        self,
        corrupted: torch.Tensor,
        labels: torch.Tensor,
        real: torch.Tensor,
        weights: torch.Tensor | None,
    ) -> Detection:
        """RTD loss: BCE of the discriminator's per-token logit over every real token."""
        logits = self.owned.rtd_head(self.discriminator(corrupted)).float()  # (B, T)
        bce = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
        logits = logits.detach()
        metrics = detection_metrics(logits, labels, real)
        return Detection(row_mean(bce, real, weights), logits, bce.detach(), metrics)

    # ---- the objective
    def terms(self, batch: Batch) -> tuple[dict[str, Term], dict[str, float]]:
        """Unweighted loss terms and metrics of one batch."""
        ids = batch.ids[:, :-1]
        real = ids != PAD_ID
        c = self.corrupt(batch)
        d = self.detect(c.corrupted, c.labels, real, batch.weights)
        metrics = {
            "gen_loss": c.gen.loss.detach(),
            "gen_acc": c.gen_accuracy,
            "replaced": d.metrics["positive"],
            "rtd_loss": d.term.loss.detach(),
            "rtd_p": d.metrics["precision"],
            "rtd_r": d.metrics["recall"],
            "rtd_auc": d.metrics["auc"],
        }
        return {"gen": c.gen, "rtd": d.term}, metrics

    def term_weights(self) -> dict[str, float]:
        return {"gen": 1.0, "rtd": self.cfg.rtd_weight}

    def __call__(self, batch: Batch) -> Output:
        terms, metrics = self.terms(batch)
        w = self.term_weights()
        weighted = {k: LossTerm(t.total, t.count, w[k]) for k, t in terms.items()}
        loss = combine(weighted)
        per_row = sum(w[k] * t.per_row for k, t in terms.items())
        return Output(loss, {"loss": loss.detach(), **metrics}, per_row, weighted)

    # ---- accounting
    def head_fraction(self) -> float:
        return 0.0  # the discriminator's tied LM head is never applied

    def generator_flops(self, seq_len: int) -> float:
        """Training FLOPs per token of the generator: blocks, projections, head on masked."""
        gen = self.owned.generator
        d_e, d_g = self.disc.cfg.d_model, gen.cfg.d_model
        projections = d_e * d_g + self.cfg.mask_rate * d_g * d_e  # embed in, head dense
        return gen.flops_per_token(seq_len, self.cfg.mask_rate) + 6.0 * projections

    def rtd_head_flops(self) -> float:
        d = self.disc.cfg.d_model
        return 6.0 * (d * d + d)

    def extra_flops_per_token(self, seq_len: int) -> float:
        return self.generator_flops(seq_len) + self.rtd_head_flops()
