"""metrics.jsonl (the source of truth for reports and fits), throughput, FLOPs and MFU."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from thrifty.atomic import write_text_atomic
from thrifty.jsonl import read_jsonl

if TYPE_CHECKING:
    from thrifty.train.tracking import Sink


class MetricsLog:
    """Append-only JSON lines; on resume, rows past the checkpoint step are dropped first.

    A run killed mid-write leaves a torn last line; resume drops it with the other rows past the
    checkpoint (see thrifty.jsonl). Every row also goes to the ``sinks`` (experiment trackers,
    thrifty.train.tracking), which are closed with the log.
    """

    def __init__(
        self, path: Path, resume_step: int | None = None, sinks: Sequence[Sink] = ()
    ) -> None:
        self.path = Path(path)
        if resume_step is not None and self.path.is_file():
            kept = [row for row in read_jsonl(self.path) if row.get("step", 0) <= resume_step]
            write_text_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a")
        self.sinks = list(sinks)

    def write(self, row: dict) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for sink in self.sinks:
            sink.write(row)

    def close(self, failed: bool = False) -> None:
        """``failed``: training stopped with an error (W&B marks the run failed)."""
        self._file.close()
        for sink in self.sinks:
            sink.close(failed)

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)


class FlopsCount:
    """Training FLOPs so far, at a rate per token that may change during the run (a switch to
    dense weights, a longer sequence-length phase): exact products per segment, no running sum
    of rounded floats, so a run without changes reports rate x tokens."""

    def __init__(self, rate: float, state: dict | None = None) -> None:
        self.rate = rate
        self.before = state["before"] if state else 0.0  # FLOPs of the finished segments
        self.start = state["start"] if state else 0  # tokens seen when this segment began

    def done(self, tokens: int) -> float:
        return self.before + self.rate * (tokens - self.start)

    def change(self, rate: float, tokens: int) -> None:
        self.before, self.start, self.rate = self.done(tokens), tokens, rate

    def state_dict(self) -> dict:
        return {"before": self.before, "start": self.start}


def measure_matmul_peak(n: int = 2048, seconds: float = 0.5, dtype=torch.float32) -> float:
    """FLOP/s of a square matmul in ``dtype`` on this CPU: the denominator of MFU on CPU.

    The best of as many products as fit ``seconds`` (at least three), each written into the
    same output so that no allocation is timed: a moment when another process holds a core
    then costs a few products, not the measurement.
    """
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    out = a @ b  # warms up the BLAS threads
    best, repeats, until = float("inf"), 0, time.perf_counter() + seconds
    while repeats < 3 or time.perf_counter() < until:
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
        repeats += 1
    return 2 * n**3 / best


# Dense bf16 peak FLOP/s for GPUs that MFU is commonly reported against.
GPU_PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def peak_flops(device: torch.device, bf16: bool = False) -> float:
    """The peak MFU is against: a GPU's datasheet bf16 peak, or on CPU a matmul measured in
    the precision the run's matmuls take (bf16 under bf16 autocast, 2-3x fp32 on CPUs with
    bf16 instructions)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in GPU_PEAKS.items():
            if key in name:
                return value
        return 100e12
    return measure_matmul_peak(dtype=torch.bfloat16 if bf16 else torch.float32)


class RunPeak:
    """A run's peak FLOP/s: ``configured`` (``train.peak_flops``) or :func:`peak_flops`.

    A CPU peak measured while the machine was busy reads low, and the run then reports an MFU
    above 1. The first time the run's own FLOP/s exceeds the peak, it is measured again and
    the higher value kept; once only, so that a FLOP count that overstates the work does not
    cost a measurement at every log.
    """

    def __init__(self, device: torch.device, bf16: bool, configured: float | None = None):
        self.value = configured or peak_flops(device, bf16)
        self._remeasure = configured is None and device.type == "cpu"
        self._device, self._bf16 = device, bf16

    def revise(self, achieved: float) -> None:
        """Measure the peak again if ``achieved`` FLOP/s (per device) exceeded it."""
        if self._remeasure and achieved > self.value:
            self._remeasure = False
            self.value = max(self.value, peak_flops(self._device, self._bf16))


def throughput(
    tokens: int,
    words: float,
    epoch: float,
    tokens_per_s: float,
    world: int,
    flops: FlopsCount,
    peak: float,
) -> dict:
    """The progress and speed columns of a training row in metrics.jsonl: ``tokens_per_s``
    of the global batch (all ranks together), MFU per device (each rank's share of the work
    against one device's ``peak``)."""
    return {
        "tokens": tokens,
        "words": words,
        "epoch": epoch,
        "tokens_per_s": tokens_per_s,
        "mfu": flops.rate * tokens_per_s / world / peak,
        "flops": flops.done(tokens),
    }


def step_line(row: dict, total_steps: int, eta_seconds: float, unit: str = "words") -> str:
    """The console line of a logged training row (metrics.jsonl's keys; ``words`` counts the
    ledger's ``unit``)."""
    skip = {"step", "loss", "lr", "grad_norm", "tokens", "words", "epoch", "tokens_per_s", "mfu"}
    extra = " | ".join(f"{k} {v:.3f}" for k, v in row.items() if k not in skip | {"flops"})
    extra = f"{extra} | " if extra else ""
    return (
        f"step {row['step']}/{total_steps} | loss {row['loss']:.4f} | {extra}"
        f"lr {row['lr']:.2e} | {row['tokens_per_s']:.0f} tok/s | MFU {row['mfu']:.2f} | "
        f"{unit} {row['words'] / 1e6:.2f}M ({row['epoch']:.2f} ep) | "
        f"ETA {format_duration(eta_seconds)}"
    )


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
