"""Auxiliary losses out of the model: the one path from a layer to the training loop.

A layer with a loss of its own (a router's load balance and z-loss) calls ``emit`` during its
forward pass. The loop runs each training micro-batch inside ``collect()`` and adds what was
emitted to the objective's loss as extra terms, so every objective picks them up without being
edited, and they are normalised over the global batch like the objective's own terms
(``thrifty.losses.LossTerm``). Outside ``collect`` (validation, scoring, export) and without
gradient (a frozen teacher's forward pass) ``emit`` does nothing.

Why a collector and not a return value: objectives call ``model(ids)`` for hidden states in
many places (GPT-BERT twice, ELECTRA on generator and discriminator, replay on a frozen copy);
returning aux losses would change every call site. OLMo-core's alternative, attaching the aux
gradient to the output, hides the aux loss from the logged loss and from global normalisation.

Padding is not routed work: the backbone marks its real tokens for the forward pass it runs
(``real_tokens``), and a layer weights its terms and counts by them (``real_mask``).

Layers that need a statistic of the global batch (the share of tokens routed to each expert)
sum it with ``all_sum``, which the loop binds to the all-reduce of its process group; models
never import ``torch.distributed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from thrifty.losses import LossTerm


class AuxLosses:
    """What the layers emitted during one micro-batch: summed terms and averaged metrics."""

    def __init__(self, all_sum: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.all_sum = all_sum
        self.terms: dict[str, LossTerm] = {}
        self.real: list[torch.Tensor | None] = []  # one per forward pass under way
        self._metrics: dict[str, list[float | torch.Tensor]] = {}

    def add(self, name: str, term: LossTerm, metrics: dict[str, float | torch.Tensor]) -> None:
        # Terms of one name from several layers add up over layers (the same tokens: one count).
        if name in self.terms:
            old = self.terms[name]
            self.terms[name] = LossTerm(old.total + term.total, old.count, old.weight)
        else:
            self.terms[name] = term
        for key, value in metrics.items():
            self._metrics.setdefault(key, []).append(value)

    @property
    def metrics(self) -> dict[str, float | torch.Tensor]:
        """Each metric averaged over the layers that reported it (tensors stay on the device:
        the loop reads them when it logs)."""
        return {k: sum(v) / len(v) for k, v in self._metrics.items()}


_active: list[AuxLosses] = []


@contextmanager
def collect(all_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> Iterator[AuxLosses]:
    """Gather what layers ``emit`` while the block runs (one training micro-batch)."""
    losses = AuxLosses(all_sum)
    _active.append(losses)
    try:
        yield losses
    finally:
        _active.pop()


def collecting() -> bool:
    """True inside ``collect`` with gradient enabled: only then is an aux loss worth computing."""
    return bool(_active) and torch.is_grad_enabled()


def emit(name: str, term: LossTerm, metrics: dict[str, float | torch.Tensor] | None = None) -> None:
    """Hand an auxiliary loss term (and metrics) to the loop; a no-op unless ``collecting()``."""
    if collecting():
        _active[-1].add(name, term, metrics or {})


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the ranks of the collecting loop (``t`` itself outside ``collect``)."""
    return _active[-1].all_sum(t) if _active else t


@contextmanager
def real_tokens(real: torch.Tensor | None) -> Iterator[None]:
    """Within the block, ``real_mask`` is ``real`` (B, T) bool, True for a real token (None:
    all are); a backbone's forward pass sets it for the layers it runs, nested passes each
    their own."""
    if not collecting():
        yield
        return
    stack = _active[-1].real
    stack.append(real)
    try:
        yield
    finally:
        stack.pop()


def real_mask(batch_shape: torch.Size) -> torch.Tensor | None:
    """The innermost forward pass's real-token mask if it is of ``batch_shape`` (B, T); None
    when every token counts (no mask, or tokens merged to another length)."""
    real = _active[-1].real[-1] if _active and _active[-1].real else None
    return real if real is not None and real.shape == batch_shape else None
