"""``thrifty eval``: task lists, data roots, result files with the ledger, refusals (exit 2)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from thrifty.cli.eval import choose_backend
from thrifty.cli.main import main
from thrifty.errors import UserError
from thrifty.eval import EVAL_TASKS
from thrifty.runs import model_kind


def test_all_tasks_write_uniform_results(task_run, shared_data, tmp_path, capsys):
    items = tmp_path / "items"
    argv = ["eval", str(task_run.run_dir), "--task", "all", "--data-root", str(shared_data),
            "--backend", "causal", "--max-items-per-subtask", "1",
            "--items", str(items)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    for name in EVAL_TASKS.names():
        saved = json.loads((task_run.run_dir / "eval" / f"{name}_causal.json").read_text())
        assert saved["task"] == name and saved["backend"] == "causal"
        assert saved["step"] == task_run.step and saved["ledger"]["budget_words"] == 1000
        assert saved["max_items_per_subtask"] == 1 and saved["macro"] == saved["score"]
        assert saved["score"] is None if name == "wug" else 0 <= saved["score"] <= 1
        assert all(set(v) == {"score", "n"} for v in saved["subtasks"].values())
        assert (items / f"{name}_causal.items.jsonl").is_file()
        assert f"{name}_causal.json" in out
    wug = json.loads((task_run.run_dir / "eval" / "wug_causal.json").read_text())
    assert wug["metric"] == "spearman" and wug["n_items"] == 1  # rho of one item: undefined


def test_auto_backend_variant_and_single_file_outputs(task_run, shared_data, tmp_path):
    out, items = tmp_path / "r.json", tmp_path / "i.jsonl"
    argv = ["eval", str(task_run.run_dir), "--task", "supplement_fast", "--data-root",
            str(shared_data), "--subtasks", "turn_taking,hypernym", "--max-pairs-per-paradigm",
            "2", "--variant", "within_word_l2r", "--out", str(out),
            "--items", str(items)]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads(out.read_text())
    assert saved["backend"] == "mntp" and saved["variant"] == "within_word_l2r"  # gpt_bert's own
    assert set(saved["subtasks"]) == {"turn_taking", "hypernym"}
    assert len(items.read_text().splitlines()) == 4
    data = shared_data / "babylm_eval" / "full_eval" / "wug_adj_nominalization"
    argv = ["eval", str(task_run.run_dir), "--task", "wug", "--data", str(data), "--backend",
            "mlm", "--max-items-per-subtask", "3"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((task_run.run_dir / "eval" / "wug_mlm.json").read_text())["n_items"] == 3


def test_discriminator_objectives_are_refused(task_run, tmp_path, capsys):
    run = tmp_path / "electra"
    shutil.copytree(task_run.run_dir, run, ignore=shutil.ignore_patterns("eval"))
    for cfg_file in [run / "config.yaml", *run.glob("checkpoints/step_*/config.yaml")]:
        cfg = yaml.safe_load(cfg_file.read_text())
        cfg_file.write_text(yaml.safe_dump({**cfg, "objective": {"name": "electra"}}))
    for backend in ("auto", "causal", "mlm"):
        argv = ["eval", str(run), "--backend", backend, "--data", "unused"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "discriminator" in err and "not meaningful" in err
    assert not (run / "eval").exists()


def test_backend_choice_follows_the_model_kind():
    assert choose_backend("auto", "mntp", "gpt_bert") == "mntp"
    assert choose_backend("causal", "mntp", "gpt_bert") == "causal"
    assert choose_backend("auto", "mlm", "replay") == "mlm"
    with pytest.raises(UserError, match="discriminator"):
        choose_backend("mlm", "discriminator", "electra")


def test_older_checkpoints_get_their_kind_from_the_objective_section():
    from thrifty.config import RunConfig

    def kind(objective):
        return model_kind({}, RunConfig(objective=objective))

    assert kind({"name": "gpt_bert"}) == "mntp"
    assert kind({"name": "replay", "base": {"name": "masked_lm"}}) == "mlm"
    assert kind({"name": "replay", "base": {"name": "electra"}}) == "discriminator"
    assert model_kind({"model_kind": "causal"}, RunConfig(objective={"name": "masked_lm"})) == (
        "causal"
    )


def test_bad_requests_exit_2(task_run, shared_data, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("THRIFTY_DATA", raising=False)
    run = str(task_run.run_dir)
    cases = [
        (["--task", "blimp,wug", "--data", str(shared_data)], "one task"),
        (["--task", "wugg"], "did you mean 'wug'"),
        (["--task", "wug"], "--data-root DIR"),
        (["--task", "wug", "--data-root", str(tmp_path)], "tried"),
        (["--backend", "causal", "--variant", "within_word_l2r"], "mlm and mntp"),
        (["--max-batch-tokens", "0", "--data", str(shared_data / "blimp")], ">= 1"),
    ]
    for extra, message in cases:
        assert main(["eval", run, *extra]) == 2, extra
        assert message in capsys.readouterr().err
