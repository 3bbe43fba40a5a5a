"""Sequence-length curriculum: longer windows late in training, tokens per step kept constant.

GPT-BERT (Charpentier & Samuel 2024, ``papers/gpt_bert.md`` §3) trains on 128-token windows for
the first 70% of steps, 256 to 90% and 512 for the rest, halving and quartering the batch so
every step sees as many tokens. ``data.seq_len_curriculum: {0.7: 256, 0.9: 512}`` says the
same in thrifty: ``data.seq_len`` and ``train.batch_size`` hold until the first fraction, and
each later phase has ``batch_size · seq_len / its seq_len`` rows (which must divide exactly).

Each phase draws its windows from a sampler of its own over the windows of its length, seeded
by the run's seed and the phase; the phase of the sampler in a checkpoint is saved with it, so
a resume on either side of a switch continues exactly. Validation keeps ``data.seq_len``, so
its curve stays comparable across phases.
"""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.errors import UserError


@dataclass(frozen=True)
class Phase:
    index: int
    start: int
    """First optimizer step of the phase."""
    seq_len: int
    batch_size: int
    """Rows per micro-batch per process."""


def plan_phases(
    curriculum: dict, seq_len: int, batch_size: int, total_steps: int, max_seq_len: int
) -> list[Phase]:
    """The phases of a run; one phase when there is no curriculum."""
    phases = [Phase(0, 0, seq_len, batch_size)]
    tokens = seq_len * batch_size
    for fraction, length in sorted(curriculum.items()):
        where = f"data.seq_len_curriculum.{fraction}"
        if not isinstance(fraction, int | float) or not 0 < fraction < 1:
            raise UserError(f"{where}: a phase starts at a fraction of training in (0, 1)")
        if not isinstance(length, int) or length <= phases[-1].seq_len:
            raise UserError(f"{where}={length}: each phase's seq_len must exceed the one before")
        if tokens % length:
            raise UserError(
                f"{where}={length}: train.batch_size x data.seq_len = {tokens} tokens per "
                f"micro-batch do not split into rows of {length}"
            )
        if length > max_seq_len:
            raise UserError(f"{where}={length} exceeds model.max_seq_len={max_seq_len}")
        phases.append(Phase(len(phases), round(fraction * total_steps), length, tokens // length))
    return phases


def phase_at(phases: list[Phase], step: int) -> Phase:
    """The phase optimizer step ``step`` (0-based) belongs to."""
    return [p for p in phases if p.start <= step][-1]


def samples_before(phases: list[Phase], step: int, grad_accum: int, world: int) -> int:
    """Global training samples (rows) drawn before optimizer step ``step``."""
    total = 0
    for phase, following in zip(phases, [*phases[1:], None]):
        end = step if following is None else min(step, following.start)
        total += max(end - phase.start, 0) * grad_accum * world * phase.batch_size
    return total
