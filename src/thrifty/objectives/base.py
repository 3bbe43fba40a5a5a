"""Objective protocol: ``objective(batch) -> Output(loss, metrics, sample_losses, terms)``.

Objectives know the model but nothing of the loop. The loop hands them a ``Batch`` of token
windows plus where training stands (``progress``) so schedules such as GPT-BERT's mask-rate
annealing live with the objective that owns them. The loop uses an objective through these
and nothing else:

- ``objective(batch)``: the loss (as terms) and metrics of one micro-batch;
- ``kind``: the model it trains (``thrifty.model_kind``), recorded in every checkpoint;
- ``owned``: networks it trains besides the model (ELECTRA's generator and heads);
- ``state_dict()`` / ``load_state_dict()``: its resumable state, RNG included;
- ``flops_per_token(seq_len)``: training FLOPs per token, model and owned networks together;
- ``setup(...)``: what it builds once per start and the words that charges to the ledger;
- ``exposure(...)``: passes over words other than the training windows (a replay set);
- ``evaluation()`` and ``extra_validation(...)``: the context validation runs in, and
  validation metrics of its own;
- ``reweightable``: whether it passes ``Batch.reweight`` on (else the reweighter probes it).

Two rules make a data-parallel step equal the one-process step on the same global batch:

- Randomness comes from ``Objective.random(batch, purpose)``: streams keyed by each row's place
  in the global micro-batch (``thrifty.objectives.randomness``), never by rank.
- The loss is reported as ``terms``: weighted ratios of a sum over this rank's units (tokens,
  or row weights) to their count. The loop adds up each term's count over all ranks before
  dividing, so the loss is a mean over the global batch, not a mean of per-rank means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.losses import LossTerm, combine, safe_count
from thrifty.model_kind import ModelKind
from thrifty.models.transformer import Transformer
from thrifty.objectives.positions import Positions
from thrifty.objectives.randomness import RowRandom
from thrifty.registry import Registry
from thrifty.transfer import to_device

OBJECTIVES = Registry("objective")

__all__ = ["IGNORE", "OBJECTIVES", "Batch", "LossTerm", "Objective", "Output", "combine"]

IGNORE = -100


@dataclass
class Batch:
    ids: torch.Tensor | None = None
    """(B, T+1) token windows; position t+1 is the next token of position t (None: a source
    of another modality, whose fields are in ``inputs``)."""
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    """Every field the data source gave (``DataSource.batch``), ``ids`` included: images and
    labels for an image set, states and actions for trajectories."""
    weights: torch.Tensor | None = None
    """(B,) per-sample weights that sum to 1 (None: every supervised token counts equally)."""
    progress: float = 0.0
    """Fraction of training done, in [0, 1]."""
    micro: int = 0
    """Global index of this micro-batch since the start of training (negative: validation)."""
    rows: torch.Tensor | None = None
    """(B,) position of each row in the global micro-batch, all ranks' rows counted in rank
    order; None: 0..B-1 (one process)."""
    global_rows: int | None = None
    """Rows in the global micro-batch over all ranks; None: B."""
    first_sample: int | None = None
    """Global index (since the start of training) of the first row of the global micro-batch;
    None: micro · total_rows, exact when every micro-batch has as many rows."""
    reweight: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
    """Loss-based sample reweighting: maps the detached per-row losses (and ``weights``) of the
    rows ``token_term`` sees to their weights (``thrifty.objectives.reweighting``)."""
    host: dict[str, torch.Tensor] = field(default_factory=dict)
    """The data source's fields as it made them, on the host, when ``inputs`` are their copies
    on a device (the training loop keeps both): what an objective draws against on the host
    (masks) or checks (labels) it reads from here instead of copying back from the device
    (``on_host``)."""

    @classmethod
    def of(cls, fields: dict[str, torch.Tensor], **kwargs) -> Batch:
        """The batch of a data source's fields (``ids`` when it has token windows)."""
        return cls(ids=fields.get("ids"), inputs=dict(fields), **kwargs)

    def __post_init__(self) -> None:
        if self.ids is not None and "ids" not in self.inputs:
            self.inputs = {**self.inputs, "ids": self.ids}

    @property
    def local_rows(self) -> int:
        """Rows of this rank's micro-batch."""
        return next(iter(self.inputs.values())).shape[0]

    def on_host(self, name: str = "ids") -> torch.Tensor:
        """Field ``name`` on the host: the kept host copy, else copied back (a wait for the
        device)."""
        kept = self.host.get(name)
        return kept if kept is not None else self.inputs[name].cpu()

    def positions(self) -> list[int]:
        """Each row's position in the global micro-batch."""
        if self.rows is None:
            return list(range(self.local_rows))
        return [int(r) for r in self.rows]

    @property
    def total_rows(self) -> int:
        return self.local_rows if self.global_rows is None else self.global_rows

    def sample_indices(self) -> list[int]:
        """The global sample index of every row of the global micro-batch, in position order."""
        first = self.micro * self.total_rows if self.first_sample is None else self.first_sample
        return list(range(first, first + self.total_rows))


@dataclass
class Output:
    loss: torch.Tensor
    """The loss on this rank's rows (``combine(terms)`` when there are terms)."""
    metrics: dict[str, float] = field(default_factory=dict)
    sample_losses: torch.Tensor | None = None
    """(B,) detached mean loss per row, in batch order, for loss-aware samplers."""
    terms: dict[str, LossTerm] | None = None
    """The loss as terms the loop normalises over the global batch, with the same names in the
    same order on every rank (a rank without units of a term reports it with count 0); None:
    ``loss`` is averaged over ranks as it is (exact only when every rank has as many units)."""


class Objective:
    """Base class: holds the model and a seeded generator for the objective's own randomness."""

    kind: ModelKind = "causal"
    """The kind of model this objective trains (``thrifty.model_kind``)."""

    reweightable = False
    """Passes ``Batch.reweight`` on to ``token_term`` (one pass); otherwise the loop reweights
    with an extra forward pass without gradient (``reweighting.probe``)."""

    owned: nn.Module | None = None
    """Networks the objective trains besides the model (ELECTRA's generator and heads): the
    loop optimizes, clips, averages and checkpoints them with the model."""

    def __init__(self, cfg, model: Transformer, *, seed: int = 0) -> None:
        self.cfg = cfg
        self.model = model
        self.seed = seed
        # kept for checkpoints of older versions, which saved its state; draws use ``random``
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: Batch) -> Output:
        raise NotImplementedError

    def random(self, batch: Batch, purpose: str) -> RowRandom:
        """Per-row random streams for ``batch``, keyed by (seed, purpose, micro-batch, row)."""
        return RowRandom(self.seed, purpose, batch.micro, batch.positions())

    @classmethod
    def kind_for(cls, section: dict) -> ModelKind:
        """The kind a config section of this objective trains, without building it."""
        return cls.kind

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: the model's (its LM head on ``head_fraction`` of the
        positions) plus the ``owned`` networks' (``extra_flops_per_token``)."""
        model_flops = self.model.flops_per_token(seq_len, self.head_fraction())
        return model_flops + self.extra_flops_per_token(seq_len)

    def head_fraction(self) -> float:
        """Average share of positions the LM head is applied to (for FLOP counts)."""
        return 1.0

    def extra_flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token spent outside the model (the ``owned`` networks)."""
        return 0.0

    @contextmanager
    def evaluation(self) -> Iterator[None]:
        """Validation runs inside this: the model and owned networks in eval mode (no dropout),
        back in train mode afterwards."""
        modules = [self.model] if self.owned is None else [self.model, self.owned]
        for m in modules:
            m.eval()
        try:
            yield
        finally:
            for m in modules:
                m.train()

    def setup(
        self,
        *,
        seq_len: int,
        device: torch.device,
        init_from: str | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> dict[str, int]:
        """Build what needs the run's layout (frozen teachers, extra data), once per start of
        training, fresh or resumed; ``init_from`` is the checkpoint the run started from.
        Returns words to charge to the ledger as auxiliary entries, {name: words}."""
        return {}

    def exposure(self, micro_batches: int, rows: int) -> list[dict]:
        """Passes over words other than the run's own training windows after ``micro_batches``
        micro-batches of ``rows`` rows per process (e.g. a replay set): ledger ``exposure``
        entries {"name", "words", "passes", "sources"} (``thrifty.data.budget``)."""
        return []

    def extra_validation(self, autocast) -> dict[str, float]:
        """Validation metrics beyond the run's own validation split (e.g. the loss on an old
        domain), named as they go into metrics.jsonl; called at every evaluation."""
        return {}

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def row_term(
    losses: torch.Tensor, weights: torch.Tensor | None, counted: torch.Tensor | None = None
) -> tuple[LossTerm, torch.Tensor]:
    """The term of per-unit ``losses`` (B, U) (patches, prefixes, images) where ``counted``
    (B, U) bool (default: every unit), and the (B,) mean per row: the mean over all counted
    units of the batch, or with sample ``weights`` (B,) their weighted sum of row means."""
    if counted is None:
        counted = torch.ones_like(losses, dtype=torch.bool)
    losses = losses * counted
    counts = counted.sum(1)
    per_row = losses.sum(1) / counts
    if weights is None:
        return LossTerm(losses.sum(), counts.sum().float()), per_row
    return LossTerm((weights * per_row).sum(), weights.sum().detach()), per_row


# Tokens per chunk of the fused head: about 4M fp32 logits (16 MB), which stay in cache.
HEAD_CHUNK_LOGITS = 1 << 22


class _HeadCrossEntropy(torch.autograd.Function):
    """Tied LM head + cross-entropy over token chunks, with the gradient taken in the forward pass.

    The unfused path materialises (N, V) logits, their log-softmax and a zero-filled gradient of
    the same size: for a batch of 32 x 128 tokens and V = 8192 that is 134 MB each, streamed
    through DRAM several times per step. Here each chunk of logits is used while it is still
    in cache: loss and argmax, then d(loss)/d(logits) in place, which goes straight into the
    two gradient matmuls. The loss is linear in the per-token losses (``coef`` holds d loss /
    d token loss), so backward only scales the stored gradients. Same fp32 math as
    ``F.cross_entropy`` (gradients agree to ~3e-7 relative). On a 2-core CPU it took the
    benchmark step (mini, 32 x 128 tokens, V = 8192) from 1.49 s to 1.31 s (median of
    interleaved steps); see benchmarks/throughput.md.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, coef, z_loss, need_grad):
        N, V = hidden.shape[0], weight.shape[0]
        chunk = max(1, HEAD_CHUNK_LOGITS // V)
        losses = hidden.new_empty(N)
        correct = torch.zeros((), dtype=torch.long)
        grad_h = torch.empty_like(hidden) if need_grad and ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight) if need_grad and ctx.needs_input_grad[1] else None
        probs_buffer = hidden.new_empty(min(chunk, N), V)
        for s in range(0, N, chunk):
            h, y, c = hidden[s : s + chunk], targets[s : s + chunk], coef[s : s + chunk]
            logits = h @ weight.T  # (n, V)
            top, pred = logits.max(-1)
            correct += (pred == y).sum()
            target_logit = logits.gather(1, y[:, None]).squeeze(1)
            # torch.softmax's fused kernel is ~2x faster on CPU than max-subtract + exp_ + sum.
            # logsumexp = top - log p_top, and p_top >= 1/V, so the log is well conditioned.
            probs = torch.softmax(logits, -1, out=probs_buffer[: len(y)])
            lse = top - probs.gather(1, pred[:, None]).squeeze(1).log()
            loss = lse - target_logit
            if z_loss:
                loss = loss + z_loss * lse.square()
            losses[s : s + chunk] = loss
            if grad_h is None and grad_w is None:
                continue
            # d loss_i / d logits = softmax · (1 + 2·z·lse) − onehot(y), times coef_i
            scale = c * (1 + 2 * z_loss * lse) if z_loss else c
            probs.mul_(scale[:, None]).scatter_add_(1, y[:, None], -c[:, None])
            if grad_h is not None:
                torch.mm(probs, weight, out=grad_h[s : s + chunk])
            if grad_w is not None:
                grad_w.addmm_(probs.T, h)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.mark_non_differentiable(losses, correct)
        return (coef * losses).sum(), losses, correct

    @staticmethod
    def backward(ctx, grad_loss, _losses, _correct):
        grad_h, grad_w = ctx.saved_tensors
        return (
            None if grad_h is None else grad_h * grad_loss,
            None if grad_w is None else grad_w * grad_loss,
            None,
            None,
            None,
            None,
        )


def token_term(
    model: Transformer,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None,
    z_loss: float = 0.0,
    reweight: Callable | None = None,
    dense: bool = False,
    supervised: torch.Tensor | None = None,
) -> tuple[LossTerm, torch.Tensor, dict]:
    """Cross-entropy of ``targets`` (B, T; IGNORE where unsupervised) read from ``hidden``.

    The LM head runs only on supervised positions (MLM supervises ~15% of them). Returns the
    loss as a term (sum of token losses over supervised tokens, or Σ_i w_i · row-mean_i over
    Σ_i w_i when weights are given), the detached per-row mean losses, and accuracy metrics.
    ``reweight`` (``Batch.reweight``) turns the per-row losses into the weights w_i, with no
    gradient through them; that needs the losses before the gradient, so it takes the unfused
    path below (one pass; the fused head wants its token coefficients up front).

    ``dense``: the targets supervise (nearly) every position, as next-token prediction's do.
    Off the fp32 CPU path the head then reads every position, IGNORE ones masked out of the
    sums, instead of gathering the supervised ones first: gathering sizes a tensor by a count
    the host must read from the device, a wait in every step. ``supervised``: ``targets !=
    IGNORE`` on the host, when the caller made the targets from a mask it drew there (masked
    objectives): the supervised positions are then gathered by indices sent to the device,
    with no count read back. Metrics are 0-dim tensors where they come from the device, so the
    loop reads them only when it logs.
    """
    head = model.embed.weight  # the tied head: model.logits(h) == h @ head.T
    fp32 = hidden.dtype == head.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    cpu_fused = hidden.device.type == "cpu" and fp32 and reweight is None
    if dense and not cpu_fused:
        return _dense_token_term(model, hidden, targets, weights, z_loss, reweight)
    h, y, rows, counts = _supervised_positions(hidden, targets, supervised)
    if cpu_fused and y.numel():
        # fp32 on CPU: the fused, chunked head + loss (same values, far less memory traffic).
        # Token weights: the sum is Σ_t coef_t · loss_t, coef_t = w_row / count_row or 1.
        coef = (weights / counts)[rows].to(h.dtype) if weights is not None else h.new_ones(y.shape)
        fused = _HeadCrossEntropy.apply(h, head, y, coef, z_loss, torch.is_grad_enabled())
        total, losses, correct = fused
        per_row = torch.zeros(targets.shape[0]).index_add(0, rows, losses) / counts
        count = weights.sum() if weights is not None else torch.tensor(float(y.numel()))
        metrics = {"accuracy": correct.item() / y.numel(), "supervised": float(y.numel())}
        return LossTerm(total, count.detach()), per_row, metrics
    logits = model.logits(h).float()  # (N, V)
    losses = F.cross_entropy(logits, y, reduction="none")  # (N,)
    if z_loss:
        losses = losses + z_loss * torch.logsumexp(logits, dim=-1).pow(2)
    per_row = (
        torch.zeros(targets.shape[0], device=losses.device).index_add(0, rows, losses) / counts
    )
    if reweight is not None:
        weights = reweight(per_row.detach(), weights)
    if weights is not None:
        term = LossTerm((weights * per_row).sum(), weights.sum().detach())
    else:
        term = LossTerm(losses.sum(), losses.new_full((), float(y.numel())))
    with torch.no_grad():
        acc = (logits.argmax(-1) == y).float().mean() if y.numel() else 0.0
    return term, per_row.detach(), {"accuracy": acc, "supervised": float(y.numel())}


def _supervised_positions(
    hidden: torch.Tensor, targets: torch.Tensor, supervised: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (N, C) hidden states and (N,) targets of the supervised positions, each one's row
    and every row's count (at least 1). With the host's ``supervised`` mask, by indices copied
    to the device; else by the device's mask, whose count the host must wait for."""
    if supervised is None:
        supervised = targets != IGNORE  # (B, T)
        rows = supervised.nonzero()[:, 0]
        counts = supervised.sum(1).clamp(min=1)
        return hidden[supervised], targets[supervised], rows, counts
    device = hidden.device
    at = Positions.drawn(supervised, device)  # counted on the host: no wait
    rows = to_device(at.host // targets.shape[1], device)
    return at.take(hidden), at.take(targets), rows, to_device(supervised.sum(1).clamp(1), device)


def _dense_token_term(
    model: Transformer,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None,
    z_loss: float,
    reweight: Callable | None,
) -> tuple[LossTerm, torch.Tensor, dict]:
    """``token_term`` on every position (``dense=True``): the same values, with no count
    read back to the host."""
    supervised = targets != IGNORE  # (B, T)
    logits = model.logits(hidden).float()  # (B, T, V)
    flat = F.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="none"
    )
    losses = flat.view_as(targets)  # 0 where unsupervised
    if z_loss:
        losses = losses + z_loss * torch.logsumexp(logits, dim=-1).pow(2) * supervised
    per_row_count = supervised.sum(1)
    per_row = losses.sum(1) / per_row_count.clamp(min=1)
    if reweight is not None:
        weights = reweight(per_row.detach(), weights)
    count = per_row_count.sum()
    if weights is not None:
        term = LossTerm((weights * per_row).sum(), weights.sum().detach())
    else:
        term = LossTerm(losses.sum(), count.to(losses.dtype))
    with torch.no_grad():
        hits = ((logits.argmax(-1) == targets) & supervised).sum()
        acc = hits / safe_count(count)
    return term, per_row.detach(), {"accuracy": acc, "supervised": count}
