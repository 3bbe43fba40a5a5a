"""FBNetV3's predictor-guided search over sweep runs: the space's encoding and Sobol sampling,
predictor pretraining on free statistics, the search loop with a stubbed trainer (measures what
it says, resumes from its cache, beats its own initial samples), and bad sections."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from thrifty.analysis.nars_search import Nars, nars_sweep, parse_nars
from thrifty.analysis.nars_space import encode, mutate, parse_space, sobol_candidates
from thrifty.analysis.predictor import MetricPredictor, kendall_tau
from thrifty.analysis.sweep import load_sweep
from thrifty.errors import UserError

NANO = Path(__file__).parents[2] / "configs" / "nano.yaml"
SPACE = {
    "model.n_layers": [1, 2, 3, 4],
    "model.d_model": [32, 48, 64, 96],
    "train.lr": {"log_uniform": [1e-4, 1e-1]},
}


def bowl(cfg) -> float:
    """A stand-in validation loss: best at 3 layers, width 64, lr 3e-3."""
    m, t = cfg.model, cfg.train
    return (m.n_layers - 3) ** 2 + (math.log2(m.d_model / 64)) ** 2 + math.log10(t.lr / 3e-3) ** 2


def stub(calls):
    def execute(sweep, runs, **kwargs):
        calls.extend(r.name for r in runs)
        return {r.name: {"status": "done", "metrics": {"val_loss": bowl(r.cfg)}} for r in runs}

    return execute


def sweep_with(tmp_path, **nars):
    path = tmp_path / "s.yaml"
    spec = {"space": SPACE, "initial": 6, "rounds": 2, "per_round": 3, "proxies": 200, **nars}
    path.write_text(yaml.safe_dump({"name": "s", "base": str(NANO), "nars": spec}))
    return load_sweep(path, tmp_path / "out")


def test_encoding_is_fixed_length_and_sobol_samples_are_distinct_and_valid():
    axes = parse_space(SPACE)
    picks = sobol_candidates(axes, 20, seed=0, valid=lambda c: c["model.d_model"] != 48)
    assert len({repr(sorted(c.items())) for c in picks}) == 20
    assert all(c["model.d_model"] != 48 for c in picks)
    assert {len(encode(axes, c)) for c in picks} == {4 + 4 + 1}
    assert all(1e-4 <= c["train.lr"] <= 1e-1 for c in picks)
    rng = np.random.default_rng(0)
    child = mutate(axes, picks[0], rng)
    assert sum(child[k] != picks[0][k] for k in child) <= 1  # one axis at a time


def test_pretraining_on_free_statistics_ranks_model_size(tmp_path):
    sweep = sweep_with(tmp_path)
    nars = Nars(sweep, parse_nars(sweep.nars), stub([]), stream=None)
    axes = nars.spec.axes
    pool = sobol_candidates(axes, 120, 1, nars.valid)
    x = np.array([encode(axes, c) for c in pool])
    proxies = np.array([nars.proxies(c) for c in pool])
    assert proxies[:, 0].std() > 0  # parameters differ across the space
    predictor = MetricPredictor(x.shape[1])
    predictor.pretrain(x[:100], proxies[:100, :1])
    predictor.fit(x[:100], proxies[:100, 0])  # the head only has to be re-read
    assert kendall_tau(predictor.predict(x[100:]), proxies[100:, 0]) > 0.6


def test_proxies_of_an_image_run_are_sized_from_its_data(tmp_path):
    from thrifty.data.images import prepare_images

    prepare_images("digits", tmp_path / "digits")
    path = tmp_path / "s.yaml"
    space = {"model.n_layers": [1, 2], "model.d_model": [16, 32]}
    path.write_text(yaml.safe_dump({
        "name": "s", "base": str(NANO.parent / "classify-digits.yaml"),
        "overrides": {"data.path": str(tmp_path / "digits")},
        "nars": {"space": space, "initial": 2, "rounds": 1, "per_round": 1, "proxies": 4},
    }))  # fmt: skip
    sweep = load_sweep(path, tmp_path / "out")
    nars = Nars(sweep, parse_nars(sweep.nars), stub([]), stream=None)
    small, large = ({"model.n_layers": n, "model.d_model": d} for n, d in ((1, 16), (2, 32)))
    assert nars.config(small).model.stem["name"] == "patches"  # the stem needs the data's size
    assert all(a < b for a, b in zip(nars.proxies(small), nars.proxies(large), strict=True))


# slow tier: ~20 s of predictor fitting over search rounds; its parts are tested above
@pytest.mark.slow
def test_search_measures_sweep_runs_resumes_and_improves(tmp_path):
    calls = []
    sweep = sweep_with(tmp_path)
    result = nars_sweep(sweep, execute=stub(calls), stream=open("/dev/null", "w"))
    assert len(calls) == len(set(calls)) == 6 + 2 * 3  # initial + rounds x per_round
    initial_best = min(m for _, m in result.measured[:6])
    assert result.metric <= initial_best
    assert result.metric < 1.0  # near the bowl's bottom after two guided rounds
    assert (tmp_path / "out" / "nars-0.jsonl").is_file()
    n = len(calls)
    again = nars_sweep(sweep, execute=stub(calls), stream=open("/dev/null", "w"))
    assert len(calls) - n <= 2 * 3  # the initial samples come from the cache
    assert again.metric <= result.metric


def test_bad_sections_name_the_key(tmp_path):
    with pytest.raises(UserError, match="unknown key 'round'"):
        parse_nars({"space": SPACE, "round": 2})
    with pytest.raises(UserError, match="train.lr"):
        parse_space({"train.lr": [1e-3]})
    with pytest.raises(UserError, match="initial"):
        parse_nars({"space": SPACE, "initial": 0})


def test_kendall_tau():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
