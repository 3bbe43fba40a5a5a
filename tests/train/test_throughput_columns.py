"""metrics.jsonl's speed columns at any world size: tokens/s of the global batch, MFU per device
against a peak in the run's precision."""

import pytest
import torch

from thrifty.train import metrics
from thrifty.train.loop import train
from thrifty.train.metrics import FlopsCount, throughput


@pytest.mark.parametrize("world", [1, 2, 4])
def test_tokens_per_second_are_the_global_batch_and_mfu_is_per_device(world):
    flops = FlopsCount(1e6)  # FLOPs per token
    row = throughput(8192, 6000.0, 0.5, 4096.0, world, flops, peak=1e10)
    assert row["tokens_per_s"] == 4096.0  # the loop times the global batch's tokens
    assert row["mfu"] == pytest.approx(1e6 * 4096 / world / 1e10)
    assert row["flops"] == pytest.approx(1e6 * 8192)


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_mfu_on_cpu_is_against_a_matmul_in_the_runs_precision(
    nano_cfg, monkeypatch, precision, dtype
):
    measured = []

    def peak(n=2048, seconds=0.5, dtype=torch.float32):
        measured.append(dtype)
        return 1e11

    monkeypatch.setattr(metrics, "measure_matmul_peak", peak)
    train(nano_cfg(f"train.precision={precision}", "train.max_steps=2", "train.eval_every=0"))
    assert measured == [dtype]


def test_a_peak_that_the_run_exceeds_is_measured_again_once(monkeypatch):
    readings = iter([5e10, 9e10, 2e11])  # the first measured while the machine was busy
    monkeypatch.setattr(metrics, "measure_matmul_peak", lambda **_: next(readings))
    peak = metrics.RunPeak(torch.device("cpu"), bf16=False)
    peak.revise(4e10)  # below the peak: nothing to measure
    assert peak.value == 5e10
    peak.revise(6e10)
    assert peak.value == 9e10
    peak.revise(1e11)  # once only: a FLOP count that overstates the work costs one measurement
    assert peak.value == 9e10


def test_a_configured_peak_is_never_measured(monkeypatch):
    monkeypatch.setattr(metrics, "measure_matmul_peak", lambda **_: pytest.fail("measured"))
    peak = metrics.RunPeak(torch.device("cpu"), bf16=False, configured=1e9)
    peak.revise(5e9)
    assert peak.value == 1e9
