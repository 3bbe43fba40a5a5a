"""The GPU throughput benchmark runs its CPU variant end to end (the code path a GPU run takes,
at a toy size in fp32), so the prepared script cannot rot between GPU runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import gpu_throughput  # noqa: E402


def test_cpu_variant_measures_both_contenders_at_every_shape(tmp_path):
    out = tmp_path / "gpu.md"
    assert gpu_throughput.main(["--scale", "cpu", "--no-compile", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| nano")]
    assert len(rows) == 4  # HF and thrifty at sequence lengths 32 and 64
    assert sum("vs HF" not in r and "x**" in r for r in rows) == 2  # thrifty rows carry a ratio
