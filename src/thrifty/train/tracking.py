"""Experiment-tracking sinks (``train.log_to``): TensorBoard and Weights & Biases.

They receive exactly the rows written to metrics.jsonl (``MetricsLog`` fans each row out), so a
tracker never shows a number the run folder does not hold; the row's ``step`` is the x axis.
The resolved config and the ledger go in as run metadata. Both libraries come with the
``track`` extra and are imported only when a run asks for them. Only rank 0 opens sinks.

Resume follows metrics.jsonl, which drops the rows past the checkpoint: TensorBoard continues
``runs/<name>/tensorboard/`` and purges the events past the checkpoint step; W&B continues the
run whose id is kept in ``runs/<name>/wandb_id``. W&B keeps the values it already has for the
steps between the checkpoint and a crash (resume is exact, so they are the same on CPU).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from typing import Protocol

from thrifty.atomic import write_text_atomic
from thrifty.config import RunConfig, dump_config, to_dict
from thrifty.errors import UserError

INSTALL = "pip install 'thrifty[track]'"


class Sink(Protocol):
    """What ``MetricsLog`` feeds: ``write`` for every metrics.jsonl row, then one ``close``."""

    def write(self, row: dict) -> None: ...

    def close(self, failed: bool = False) -> None: ...


def scalars(row: dict) -> dict[str, float]:
    """The row's numbers, the step itself left out (it is the x axis)."""
    return {
        k: v
        for k, v in row.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
    }


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"model": {"size": "nano"}}`` -> ``{"model.size": "nano"}``; lists become strings."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = str(value) if isinstance(value, list | tuple) else value
    return flat


class TensorBoardSink:
    """Scalars under the metrics.jsonl names; the config and ledger as text, the config as
    hparams (TensorBoard's HParams tab compares runs by them)."""

    def __init__(self, cfg: RunConfig, ledger: dict, resume_step: int | None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
        except ImportError:
            raise UserError(f"train.log_to=tensorboard needs tensorboard: {INSTALL}") from None
        folder = cfg.run_dir / "tensorboard"
        if resume_step is None:  # a fresh run starts a fresh curve, as metrics.jsonl does
            shutil.rmtree(folder, ignore_errors=True)
        # purge_step hides the events a crashed run logged past its checkpoint
        purge = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(str(folder), purge_step=purge)
        start = resume_step or 0
        self.writer.add_text("config", f"```yaml\n{dump_config(cfg)}```", start)
        self.writer.add_text("ledger", f"```json\n{json.dumps(ledger, indent=1)}\n```", start)
        for summary in hparams(flatten(to_dict(cfg)), {"loss": 0, "val_loss": 0}):
            self.writer.file_writer.add_summary(summary, start)
        self._step, self._seen = None, set()

    def write(self, row: dict) -> None:
        step = row["step"]
        if step != self._step:
            self._step, self._seen = step, set()
        for key, value in scalars(row).items():
            if key not in self._seen:  # a validation row repeats `words` at its step
                self.writer.add_scalar(key, value, step)
                self._seen.add(key)

    def close(self, failed: bool = False) -> None:
        self.writer.close()


class WandbSink:
    """One W&B run per run folder, offline when WANDB_MODE=offline; its files in the run
    folder (``runs/<name>/wandb/``)."""

    def __init__(self, cfg: RunConfig, ledger: dict, resume_step: int | None) -> None:
        try:
            import wandb
        except ImportError:
            raise UserError(f"train.log_to=wandb needs wandb: {INSTALL}") from None
        id_file = cfg.run_dir / "wandb_id"
        if resume_step is not None and id_file.is_file():
            run_id = id_file.read_text().strip()
        else:
            run_id = secrets.token_hex(4)  # W&B's own ids are 8 characters too
            write_text_atomic(id_file, run_id + "\n")
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "thrifty"),
                name=cfg.name,
                id=run_id,
                resume="allow" if resume_step is not None else None,
                dir=str(cfg.run_dir),
                config={**to_dict(cfg), "ledger": ledger},
            )
        except Exception as e:  # no API key, no network: W&B's own message, on one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(
                f"train.log_to=wandb: W&B did not start ({first}); set WANDB_MODE=offline to "
                "log without a network"
            ) from None

    def write(self, row: dict) -> None:
        step = row["step"]
        if step < self.run.step:  # W&B refuses steps it has (a resumed run's first rows)...
            self.run.summary.update(scalars(row))  # ...but shows their values as the latest
            return
        self.run.log(scalars(row), step=step)

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


OPENERS = {"tensorboard": TensorBoardSink, "wandb": WandbSink}


def open_sinks(cfg: RunConfig, ledger: dict, resume_step: int | None) -> list[Sink]:
    """The trackers ``cfg.train.log_to`` names, open; ``resume_step`` None for a fresh run."""
    sinks: list[Sink] = []
    try:
        for name in cfg.train.log_to:
            sinks.append(OPENERS[name](cfg, ledger, resume_step))
    except BaseException:
        for sink in sinks:  # one tracker failed to start: the others must not linger
            sink.close(failed=True)
        raise
    return sinks
