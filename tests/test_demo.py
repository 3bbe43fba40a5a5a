"""``thrifty demo`` end to end on a few steps: before/after numbers, the report, the sizing."""

from __future__ import annotations

import re

from thrifty.cli.demo import interval, sized_steps
from thrifty.cli.main import main


def test_the_demo_prints_what_training_moved_and_writes_a_report(shared_data, tmp_path, capsys):
    argv = [
        "demo",
        "--data",
        str(shared_data),
        "--out",
        str(tmp_path / "demo"),
        "--steps",
        "4",
        "--budget-words",
        "60000",
        "--blimp-pairs",
        "2",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "what training moved" in out and "BLiMP macro" in out and "95% interval" in out
    assert re.search(r"  mntp_loss +[0-9.]+ -> [0-9.]+ \([-+][0-9.]+\)", out)  # before -> after
    assert (tmp_path / "demo" / "report.html").is_file()


def test_sizing_stays_within_bounds_and_says_what_it_measured():
    steps, why = sized_steps(20e6)
    assert 60 <= steps <= 500 and "GFLOP/s measured" in why and str(steps) in why


def test_the_interval_of_a_difference_of_accuracies():
    assert abs(interval(0.5, 0.5, 10_000) - 1.96 * (0.5 / 100) * 2**0.5) < 1e-12
