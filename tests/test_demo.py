"""``thrifty demo`` end to end on a few steps: before/after numbers, the report, the sizing."""

from __future__ import annotations

import re

from thrifty.cli.demo import choose_precision, interval, sized_steps
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
    assert re.search(r"precision (fp32|bf16|auto) \(matmul GFLOP/s measured: fp32 \d+", out)
    assert re.search(r"  mntp_loss +[0-9.]+ -> [0-9.]+ \([-+][0-9.]+\)", out)  # before -> after
    assert (tmp_path / "demo" / "report.html").is_file()


def test_sizing_stays_within_bounds_and_says_what_it_measured():
    for precision in ("fp32", "bf16"):
        steps, why = sized_steps(20e6, precision, 150e9)
        assert 60 <= steps <= 500 and str(steps) in why
        assert f"{precision} matmul peak 150 GFLOP/s measured" in why
    assert sized_steps(20e6, "bf16", 150e9)[0] < sized_steps(20e6, "fp32", 150e9)[0]


def test_auto_precision_is_bf16_only_where_its_matmul_is_much_faster():
    assert choose_precision("auto", {"fp32": 100e9, "bf16": 250e9}) == "bf16"
    assert choose_precision("auto", {"fp32": 100e9, "bf16": 60e9}) == "fp32"  # emulated
    assert choose_precision("fp32", {"fp32": 100e9}) == "fp32"
    assert choose_precision("bf16", {"fp32": 100e9, "bf16": 60e9}) == "bf16"


def test_the_interval_of_a_difference_of_accuracies():
    assert abs(interval(0.5, 0.5, 10_000) - 1.96 * (0.5 / 100) * 2**0.5) < 1e-12
