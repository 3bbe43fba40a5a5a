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
from torch import nn

from thrifty.losses import LossTerm, combine
from thrifty.model_kind import ModelKind
from thrifty.models.transformer import Transformer
from thrifty.objectives.randomness import RowRandom
from thrifty.registry import Registry

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
