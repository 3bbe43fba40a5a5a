"""Dynamic loss-based sample reweighting (Sow et al., ICLR 2025; `papers/loss_reweighting.md`).

Within each global micro-batch, per-sample losses ℓ_i are normalised to [-δ, δ] with the batch
min and max, passed through a strategy g, and turned into weights w = softmax(g / r). The loss
is then Σ_i w_i ℓ_i with w held constant (no gradient through the weights):

    linupper   g = min(ℓ̃ + δ, δ)   down-weights low-loss (already learned, redundant) samples
    quadratic  g = 1 − ℓ̃²/δ²       down-weights both extremes
    extremes   g = |ℓ̃|             up-weights the easiest and the hardest
    uniform    g = ℓ̃               w ∝ exp(ℓ̃ / r): pure "focus on hard"

Why this is a loss weighting and not a sampler: the weights of a batch depend on that same
batch's losses, so they must be known before its backward pass, while a sampler only hears about
losses afterwards (``observe``). The loop sets ``Batch.reweight`` to a ``Reweighting``;
objectives that compute their loss with ``token_term`` (``causal_lm``, ``masked_lm``,
``gpt_bert``, and ``replay`` around them; ``Objective.reweightable``) pass it on, and
``token_term`` weights the rows from their own losses in the same pass. It uses the unfused
head for that (the fused CPU head needs its coefficients up front). Any other objective that
reports ``Output.sample_losses`` is reweighted through ``probe``: one extra forward pass without
gradient, then the objective's random stream is rewound so the weighted pass sees the same
masks. Measured on the CPU ``mini`` shape (batch 32 x 128, vocab 8192, 2 threads, median of 10
interleaved forward+backward steps, on a loaded machine): the one-pass path took 0.98x the plain
fused step (no measurable cost), the probe path 1.37x. GPT-BERT's causal and masked rows are
weighted within their own part, since their losses have different scales.

Under data parallelism the normalisation uses the global batch: the loop gathers every rank's
losses, computes the weights over all of them and keeps its own slice times the world size,
because gradients are averaged over ranks afterwards (the card's "× world size"). With gradient
accumulation each micro-batch is normalised on its own. The timing above is
``python benchmarks/reweight_check.py --overhead`` (no data needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from thrifty.errors import UserError
from thrifty.objectives.base import Batch, Objective

STRATEGIES = ("linupper", "quadratic", "extremes", "uniform")
# A batch whose losses span less than this (relative to their size) counts as all equal: the
# min-max normalisation would divide by ~0, and the card's guard makes the weights uniform.
EQUAL_LOSSES = 1e-6


def normalise(losses: torch.Tensor, delta: float = 1.0) -> torch.Tensor | None:
    """ℓ̃ in [-δ, δ] by the batch min and max; None when the losses are (nearly) all equal."""
    lo, hi = losses.min(), losses.max()
    spread = (hi - lo).item()
    if not math.isfinite(spread) or spread <= EQUAL_LOSSES * max(1.0, abs(hi.item())):
        return None
    return delta * (2 * losses - (hi + lo)) / (hi - lo)


def strategy_values(scaled: torch.Tensor, strategy: str, delta: float = 1.0) -> torch.Tensor:
    """g(ℓ̃) of the card's table."""
    if strategy == "linupper":
        return torch.clamp(scaled + delta, max=delta)
    if strategy == "quadratic":
        return 1 - scaled.square() / delta**2
    if strategy == "extremes":
        return scaled.abs()
    if strategy == "uniform":
        return scaled
    raise UserError(f"train.reweight.strategy={strategy!r} is not one of {', '.join(STRATEGIES)}")


@torch.no_grad()
def row_weights(
    losses: torch.Tensor, strategy: str, temperature: float = 1.0, delta: float = 1.0
) -> torch.Tensor:
    """(B,) weights that sum to 1 for per-sample ``losses`` (B,); uniform when all are equal."""
    losses = losses.detach().double()
    scaled = normalise(losses, delta)
    if scaled is None:
        return torch.full_like(losses, 1 / len(losses)).float()
    g = strategy_values(scaled, strategy, delta)
    return torch.softmax(g / temperature, dim=0).float()


@torch.no_grad()
def weight_stats(weights: torch.Tensor, losses: torch.Tensor) -> dict[str, float]:
    """Normalised entropy of the weights (1 = uniform) and the weight share of the lowest-loss
    quarter of the rows (0.25 = no preference), for metrics.jsonl."""
    n = len(weights)
    w = weights.double()
    entropy = -(w * w.clamp_min(1e-30).log()).sum().item()
    quarter = max(1, n // 4)
    lowest = torch.argsort(losses.detach(), stable=True)[:quarter]
    return {
        "rw_entropy": entropy / math.log(n) if n > 1 else 1.0,
        "rw_low_quartile": w[lowest].sum().item(),
    }


def probe(objective: Objective, batch: Batch) -> torch.Tensor:
    """Per-row losses (B,) of ``batch`` without gradient. The objective's random streams are
    keyed by the batch's rows, so the weighted pass that follows draws the same masks."""
    with torch.no_grad():
        out = objective(batch)
    if out.sample_losses is None:
        raise UserError(
            f"train.reweight needs per-row losses, and the {type(objective).__name__} objective "
            "reports none (Output.sample_losses)"
        )
    return out.sample_losses.detach()


class Reweighting:
    """The loop's handle, set as ``Batch.reweight``: local per-row losses in, local weights out.

    Each call gathers the losses of all ranks (``gather`` returns every rank's rows in rank
    order and how many came from each; ranks may hold different numbers of rows), weights the
    global batch, multiplies in the sampler's weights if there are any, and returns this rank's
    slice times the world size.
    The statistics of every call are kept until ``pop_stats``.
    """

    def __init__(
        self,
        cfg,
        *,
        gather: Callable[[torch.Tensor], tuple[torch.Tensor, list[int]]] | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        """``cfg``: a ``thrifty.config.ReweightConfig`` (strategy, temperature, delta)."""
        if cfg.strategy not in STRATEGIES:
            raise UserError(
                f"train.reweight.strategy={cfg.strategy!r} is not one of {', '.join(STRATEGIES)}"
            )
        self.strategy, self.temperature, self.delta = cfg.strategy, cfg.temperature, cfg.delta
        self.gather = gather or (lambda t: (t, [len(t)]))
        self.rank, self.world = rank, world
        self._stats: list[dict[str, float]] = []

    @torch.no_grad()
    def __call__(self, losses: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Weights (B,) for this rank's rows; ``weights``: the rows' own (sampler) weights."""
        B = len(losses)
        every, sizes = self.gather(losses.detach().float())  # (Σ sizes,)
        every = every.cpu()
        w = row_weights(every, self.strategy, self.temperature, self.delta)
        if weights is not None:  # every rank has sampler weights, or none has
            w = w * self.gather(weights.detach().float())[0].cpu()
            w = w / w.sum()
        self._stats.append(weight_stats(w, every))
        start = sum(sizes[: self.rank])
        mine = w[start : start + B] * self.world
        return mine.to(losses.device)

    def pop_stats(self) -> dict[str, float]:
        """Mean statistics of the calls since the last pop (GPT-BERT calls once per part)."""
        stats, self._stats = self._stats, []
        if not stats:
            return {}
        return {k: sum(s[k] for s in stats) / len(stats) for k in stats[0]}

    def probe_weights(self, objective: Objective, batch: Batch) -> torch.Tensor:
        """Weights for an objective that does not pass ``Batch.reweight`` to ``token_term``:
        its per-row losses from a forward pass without gradient (``probe``)."""
        return self(probe(objective, batch), batch.weights)

    def prepare(self, objective: Objective, batch: Batch) -> None:
        """Arrange for ``batch`` to be reweighted: through ``Batch.reweight`` in the objective's
        own pass when it is ``reweightable``, else by weights from a forward pass without
        gradient (``probe``) put into ``Batch.weights``. Run it in the step's autocast."""
        if objective.reweightable:
            batch.reweight = self
        else:
            batch.weights = self.probe_weights(objective, batch)
