"""What a training run's config and data fix before its first step: the config fitted to the
data, the training and validation sources, the ledger, the global batch, the number of steps and
the sequence-length phases, and the sampler of each phase."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from thrifty.config import RunConfig
from thrifty.data.budget import Ledger
from thrifty.data.samplers import SAMPLERS
from thrifty.data.source import DataSource
from thrifty.objectives.randomness import stream_seed
from thrifty.train.curriculum import Phase, plan_phases
from thrifty.train.schedule import plan_steps
from thrifty.train.start import fit_to_data

log = logging.getLogger("thrifty.train")


@dataclass(frozen=True)
class Plan:
    """What the config and the data fix before the first step."""

    cfg: RunConfig  # fitted to the data (its vocabulary, an image's patches)
    train_source: DataSource
    valid_source: DataSource
    ledger: Ledger
    rows_per_step: int  # global: batch_size x grad_accum x processes
    total_steps: int
    phases: list[Phase]  # sequence-length curriculum (one phase without)

    @property
    def tokens_per_step(self) -> int:
        return self.rows_per_step * self.cfg.data.seq_len

    def sampler_for(self, phase: Phase):
        """Each phase samples the windows of its own length, from its own seed."""
        seed = self.cfg.train.seed
        seed = seed if phase.index == 0 else stream_seed(seed, phase.index)
        items = self.train_source.num_items(phase.seq_len)
        return SAMPLERS.build(self.cfg.data.sampler, items, seed=seed)


def plan_run(cfg: RunConfig, world: int, main: bool) -> Plan:
    """Fit ``cfg`` to its data; the run's ledger, steps and sequence-length phases."""
    tc = cfg.train
    cfg, train_source, valid_source = fit_to_data(cfg)
    ledger = Ledger.from_dict(train_source.manifest["ledger"])
    T, B = cfg.data.seq_len, tc.batch_size
    rows_per_step = B * tc.grad_accum * world
    items = train_source.num_items(T)
    total_steps = plan_steps(tc, items, rows_per_step, T, train_source.units_per_token)
    phases = plan_phases(cfg.data.seq_len_curriculum, T, B, total_steps, cfg.model.max_seq_len)
    planned_epochs = total_steps * rows_per_step / items
    if planned_epochs > ledger.max_epochs and main:
        log.warning(
            "this run plans %.1f epochs, above the %g-epoch rule; `thrifty audit` will flag it",
            planned_epochs,
            ledger.max_epochs,
        )
    return Plan(cfg, train_source, valid_source, ledger, rows_per_step, total_steps, phases)
