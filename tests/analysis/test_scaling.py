"""Power-law fits recover known parameters; the data multiplier of a recipe against itself is
1; a recipe below the baseline's asymptote gives an unbounded multiplier, not a crash."""

import math

import numpy as np
import pytest

from thrifty.analysis.scaling import PowerLaw, data_multiplier, fit_power_law, plot_fits
from thrifty.errors import UserError

TRUE = PowerLaw(A=40.0, alpha=0.35, E=2.2)
WORDS = np.array([2.5e5, 5e5, 1e6, 2e6, 4e6, 8e6])


def test_fit_recovers_known_parameters_from_noisy_points():
    rng = np.random.default_rng(1)
    x = np.repeat(WORDS, 3)  # three seeds per budget
    y = TRUE(x) + rng.normal(0, 0.005, len(x))
    fit = fit_power_law(x, y, n_boot=200, seed=0)
    assert fit.method == "replicates"
    assert fit.law.alpha == pytest.approx(TRUE.alpha, rel=0.1)
    assert fit.law.E == pytest.approx(TRUE.E, abs=0.05)
    for name in ("A", "alpha", "E"):
        lo, hi = fit.ci(name)
        assert lo <= getattr(TRUE, name) <= hi, name
    assert "alpha = " in fit.summary()


def test_fit_of_ensemble_sizes_without_replicates():
    k = np.arange(1, 6, dtype=float)
    law = PowerLaw(A=0.3, alpha=1.0, E=3.3)
    y = law(k) + np.array([0.002, -0.002, 0.001, -0.001, 0.0])
    fit = fit_power_law(k, y, n_boot=200)
    assert fit.method == "residuals"
    assert fit.law.E == pytest.approx(3.3, abs=0.02)
    assert abs(fit.law(4.0) - y[3]) < 0.01  # the card's sanity check: K=4 within 0.01 nats


def test_fit_needs_three_distinct_x_and_reports_no_ci_with_three_points():
    with pytest.raises(UserError, match="at least 3"):
        fit_power_law([1, 2, 2], [3.0, 2.9, 2.8])
    fit = fit_power_law(WORDS[:3], TRUE(WORDS[:3]), n_boot=100)
    assert fit.ci("E") is None and "no CI" in fit.summary()


def test_multiplier_of_a_recipe_against_itself_is_one():
    rng = np.random.default_rng(2)
    y = TRUE(WORDS) + rng.normal(0, 0.004, len(WORDS))
    fit = fit_power_law(WORDS, y, n_boot=200)
    m = data_multiplier(WORDS, y, 1e6, [fit.law(1e6)], baseline_fit=fit)
    assert m.value == pytest.approx(1.0, rel=1e-9)
    lo, hi = m.ci
    assert lo <= 1.0 <= hi
    exact = data_multiplier(WORDS, TRUE(WORDS), 2e6, [TRUE(2e6)], n_boot=0)
    assert exact.value == pytest.approx(1.0, rel=1e-4) and exact.ci is None


def test_multiplier_of_a_better_recipe_matches_the_inverse_law():
    better = TRUE(3e6)  # the recipe reaches at 1M words what the baseline reaches at 3M
    m = data_multiplier(WORDS, TRUE(WORDS), 1e6, [better], n_boot=50)
    assert m.value == pytest.approx(3.0, rel=1e-3)
    assert "multiplier 3x" in m.describe()


def test_recipe_below_the_asymptote_is_unbounded_not_a_crash():
    m = data_multiplier(WORDS, TRUE(WORDS), 1e6, [TRUE.E - 0.1], n_boot=50)
    assert m.unbounded and math.isinf(m.value) and m.unbounded_share == 1.0
    text = m.describe()
    assert "unbounded" in text and "asymptote" in text and "> 8x" in text


def test_plot_is_written(tmp_path):
    fit = fit_power_law(WORDS, TRUE(WORDS), n_boot=0)
    plot_fits([("baseline", fit)], tmp_path / "fit.png", xlabel="words")
    assert (tmp_path / "fit.png").stat().st_size > 1000


def fake_run(folder, words: int, loss: float):
    """A finished run as far as the fits can tell: config, ledger and a final validation row."""
    import json

    import yaml

    from thrifty.config import ModelConfig, RunConfig, TrainConfig, to_dict

    folder.mkdir(parents=True)
    cfg = RunConfig(model=ModelConfig(size="nano", vocab_size=300), train=TrainConfig(max_steps=1))
    (folder / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    (folder / "ledger.json").write_text(json.dumps({"prepared_words": {"train": words}}))
    rows = [{"step": 5, "loss": loss - 0.5}, {"step": 5, "val_loss": loss}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


def test_scaling_command_fits_runs_and_reports_the_multiplier(tmp_path, capsys):
    import json

    from thrifty.cli.main import main

    base = [fake_run(tmp_path / f"b{i}", int(w), float(TRUE(w))) for i, w in enumerate(WORDS)]
    recipe = fake_run(tmp_path / "r", 1_000_000, float(TRUE(2e6)))
    plot = tmp_path / "fit.png"
    argv = ["scaling", *base, "--x", "words", "--recipe", recipe, "--bootstrap", "50"]
    assert main([*argv, "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "alpha = 0.35" in out and "multiplier 2x" in out and plot.is_file()

    results = []
    for k, loss in ((1, 3.6), (2, 3.45), (3, 3.4), (4, 3.375)):
        results.append(tmp_path / f"k{k}.json")
        results[-1].write_text(json.dumps({"k": k, "val_loss": loss}))
    assert main(["scaling", *map(str, results), "--x", "k", "--bootstrap", "50"]) == 0
    assert "E = " in capsys.readouterr().out
    assert main(["scaling", *base, "--x", "k"]) == 2  # runs are not ensemble results
    assert "thrifty ensemble" in capsys.readouterr().err
