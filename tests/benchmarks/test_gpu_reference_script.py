"""The BabyLM-scale reference run's script runs its CPU variant end to end (prepare, train,
every zero-shot task found, audit, summary), so the prepared GPU run cannot rot between GPU
runs. About a minute on two cores, so it is in the slow tier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_reference.sh"


@pytest.mark.slow
def test_cpu_variant_trains_scores_every_task_and_summarises(tmp_path):
    data = os.environ.get("THRIFTY_TEST_DATA")
    if not data:
        pytest.skip("THRIFTY_TEST_DATA is not set")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(SCRIPT), "--scale", "cpu", data, str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ok: within the budget and the epoch limit" in done.stdout  # thrifty audit
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tokens_per_s"] > 0 and 0 < summary["mfu"] < 1
    assert {"blimp_causal", "entity_tracking_causal", "reading_causal"} <= set(summary["scores"])
    assert "| blimp_causal |" in (tmp_path / "out" / "summary.md").read_text()


def test_bad_arguments_exit_2_with_the_usage_line():
    done = subprocess.run(["bash", str(SCRIPT), "--scale", "tpu", "a", "b"], capture_output=True)
    assert done.returncode == 2 and b"usage: bash benchmarks/gpu_reference.sh" in done.stderr
