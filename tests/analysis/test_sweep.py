"""Sweeps: deterministic run names, a data ladder with one tokenizer, two real nano runs through
the subprocess path (index, skip when finished, resume when interrupted), --print, and the
recipe search wired to sweep runs."""

import json
import math
from pathlib import Path

import pytest
import yaml

from thrifty.analysis import runner
from thrifty.analysis.sweep import load_sweep, prepare_commands, prepare_ladder, run_names
from thrifty.cli.main import main
from thrifty.errors import UserError

NANO = Path(__file__).parents[2] / "configs" / "nano.yaml"


@pytest.fixture(scope="module")
def corpus(toy, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep-corpus")
    (folder / "toy.train").write_text("\n".join(toy.texts(1500, seed=2)) + "\n")
    return folder


def write_sweep(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump({"name": "s", "base": str(NANO), **sections}))
    return path


def test_run_names_are_deterministic_and_unique():
    points = [{"train.lr": 0.001, "data.path": "a/x"}, {"train.lr": 0.001, "data.path": "b/x"}]
    names = run_names("sw", points)
    assert names == run_names("sw", points) and len(set(names)) == 2
    assert names[0].startswith("sw-lr_0.001-path_x-")  # same folder name: a hash tells apart
    clash = run_names("sw", [{"train.seed": 1, "model.seed": 2}])
    assert clash == ["sw-train.seed_1-model.seed_2"]


def test_grid_runs_and_data_ladder(corpus, tmp_path):
    sweep_file = write_sweep(
        tmp_path / "sweep.yaml",
        grid={"train.weight_decay": [0.1, 0.8]},
        runs=[{"train.seed": 0}, {"train.seed": 1}],
        data={"sources": [str(corpus)], "budgets": ["4k", 2000], "vocab_size": 300},
    )
    sweep = load_sweep(sweep_file, tmp_path / "out")
    runs = sweep.build()
    assert len(runs) == 8 and len({r.name for r in runs}) == 8
    assert runs[0].name == "s-seed_0-weight_decay_0.1-budget_words_2000"
    assert runs[0].cfg.data.path == str(tmp_path / "out" / "data" / "budget_2000")
    assert runs[0].cfg.run_dir == tmp_path / "out" / "runs" / runs[0].name
    commands = prepare_commands(sweep)
    assert [c[c.index("--budget-words") + 1] for c in commands] == ["2000", "4000"]
    prepare_ladder(sweep)
    folders = [tmp_path / "out" / "data" / f"budget_{b}" for b in (2000, 4000)]
    tokenizers = {(f / "tokenizer.json").read_text() for f in folders}
    assert len(tokenizers) == 1  # one tokenizer for the whole ladder
    assert prepare_commands(sweep) == []  # prepared rungs are not prepared again


def test_bad_sweep_files_name_the_key(tmp_path):
    with pytest.raises(UserError, match="did you mean 'grid'"):
        load_sweep(write_sweep(tmp_path / "a.yaml", gird={}))
    sweep = load_sweep(write_sweep(tmp_path / "b.yaml", grid={"train.lrr": [1]}))
    with pytest.raises(UserError, match="run s-lrr_1.*did you mean 'lr'"):
        sweep.build()


@pytest.mark.slow
def test_two_real_runs_skip_and_resume(toy, corpus, tmp_path, capsys):
    from thrifty.analysis.sweep import write_configs
    from thrifty.config import load_config
    from thrifty.data.prepare import prepare
    from thrifty.train.loop import train

    data = tmp_path / "data"
    prepare([str(corpus)], data, budget_words=None, vocab_size=300, progress=False)
    overrides = {
        "data.path": str(data),
        "train.max_steps": 3,
        "train.eval_every": 0,
        "train.peak_flops": 1e11,
    }
    sweep_file = write_sweep(
        tmp_path / "sweep.yaml", overrides=overrides, grid={"train.seed": [0, 1]}
    )
    out = tmp_path / "sweep"
    runs = load_sweep(sweep_file, out).build()
    write_configs(runs)
    # a run the index does not know as done (left by an interrupted sweep, or a scheduler)
    train(load_config(runs[1].config_path, ["train.threads=1"]))

    argv = ["sweep", str(sweep_file), "--dir", str(out), "--jobs", "2", "--threads", "1"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["done", "done"]
    assert all(r["metrics"]["val_loss"] > 0 and r["metrics"]["step"] == 3 for r in rows)
    assert rows[0]["overrides"] == {"train.seed": 0}
    logs = {r["name"]: Path(r["log"]).read_text() for r in rows}
    assert "resumed from" not in logs[rows[0]["name"]]
    assert "resumed from" in logs[rows[1]["name"]]  # continued with --resume auto

    assert main(argv) == 0  # finished runs are skipped: no process, logs unchanged
    assert {r["name"]: Path(r["log"]).read_text() for r in rows} == logs
    capsys.readouterr()

    assert main([*argv, "--print"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        f"thrifty train {out / 'configs' / r['name']}.yaml train.threads=1 --resume auto"
        for r in rows
    ]


def test_search_runs_points_as_sweep_runs(tmp_path, monkeypatch):
    """The search decides, the sweep trains: stubbed training whose loss is a bowl."""
    calls = []

    def fake_run_sweep(sweep, runs, **kwargs):
        rows = {}
        for run in runs:
            calls.append(run.name)
            lr, wd = run.cfg.train.lr, run.cfg.train.weight_decay
            loss = 3 + math.log2(lr / 1e-3) ** 2 + math.log2(wd / 0.4) ** 2
            rows[run.name] = {"status": "done", "metrics": {"val_loss": loss}}
        return rows

    monkeypatch.setattr(runner, "run_sweep", fake_run_sweep)
    search = {"start": {"train.lr": 4e-3, "train.weight_decay": 0.1}, "metric": "val_loss"}
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", search=search), tmp_path / "out")
    result = runner.search_sweep(sweep)
    assert result.converged and result.best == pytest.approx(
        {"train.lr": 1e-3, "train.weight_decay": 0.4}
    )
    assert len(calls) == len(set(calls))  # every run trained once
    assert (tmp_path / "out" / "search.jsonl").is_file()
    n = len(calls)
    assert runner.search_sweep(sweep).best == result.best and len(calls) == n  # from the cache


def test_the_documented_example_is_valid():
    example = Path(__file__).parents[2] / "configs" / "sweeps" / "example.yaml"
    sweep = load_sweep(example, "sweeps/example")
    runs = sweep.build()
    assert len(runs) == 2 * 2 * 3 * 2  # runs x weight decay x epochs x budgets
    assert sweep.search["start"]["train.lr"] == 1.0e-2
    from thrifty.analysis.nars_search import parse_nars

    assert len(parse_nars(sweep.nars).axes) == 5
