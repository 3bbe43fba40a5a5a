"""The BabyLM 2025 pipeline's result layout: folder names, report text, predictions that agree
with thrifty's accuracy (ties predict the wrong completion), and reading's six files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from thrifty.eval import EVAL_TASKS, task_folder
from thrifty.eval.pipeline_layout import read_rows, report, results_folder, write_results


class Stub:
    backend, variant = "causal", "original"

    def sentences(self, texts):
        return [-float(len(t)) for t in texts]  # shorter is likelier

    def continuations(self, contexts, texts):
        return [-float(len(t)) for t in texts]

    def word_logprobs(self, contexts, words, mask_tokens=3):
        return [-float(len(c) % 7 + len(w)) for c, w in zip(contexts, words, strict=True)]


def run_task(name, folder, tmp_path, **cfg):
    items = tmp_path / f"{name}.items.jsonl"
    result = EVAL_TASKS.build({"name": name, **cfg}).evaluate(Stub(), folder, items_path=items)
    out = tmp_path / "out" / name
    written = write_results(out, name, result, read_rows(items))
    return result, read_rows(items), out, written


def test_folders_follow_the_pipeline_names(tmp_path):
    root = tmp_path / "results"
    full = Path("data/babylm_eval/full_eval")

    def where(task, data):
        return results_folder(root, "m", "main", "mntp", task, full / data)

    base = root / "m" / "main" / "zero_shot" / "mntp"
    assert where("blimp_filtered", "blimp_filtered") == base / "blimp" / "blimp_filtered"
    assert where("supplement_fast", "supplement_fast") == base / "blimp" / "supplement_fast"
    assert where("ewok", "ewok_filtered") == base / "ewok" / "ewok_filtered"
    tracking = base / "entity_tracking" / "entity_tracking"
    assert where("entity_tracking", "entity_tracking") == tracking
    assert where("wug", "wug_adj_nominalization") == base / "wug_adj" / "wug_adj_nominalization"
    assert where("reading", "reading") == base / "reading"


def test_report_text():
    text = report({"UID": {"a": 50.0, "b": 12.345}}, 31.1725, "ACCURACY")
    assert text == ("TEMPERATURE: 1.00\n\n### UID ACCURACY\na: 50.00\nb: 12.35\n\n"
                    "### AVERAGE ACCURACY\n31.17\n\n")  # fmt: skip


def test_minimal_pairs_predictions_agree_with_accuracy(shared_data, tmp_path):
    folder = task_folder("blimp_filtered", shared_data, None)
    result, rows, out, written = run_task("blimp_filtered", folder, tmp_path,
                                          max_items_per_subtask=3)  # fmt: skip
    assert sorted(p.name for p in written) == ["best_temperature_report.txt", "predictions.json"]
    preds = json.loads((out / "predictions.json").read_text())
    assert set(preds) == set(result["subtasks"])
    for uid, entries in preds.items():
        mine = [r for r in rows if r["paradigm"] == uid]
        entries = entries["predictions"]
        assert [e["id"] for e in entries] == [f"{uid}_{i}" for i in range(len(mine))]
        hits = [e["pred"] == r["sentence_good"] for e, r in zip(entries, mine, strict=True)]
        assert sum(hits) / len(hits) == pytest.approx(result["subtasks"][uid]["score"])
    text = (out / "best_temperature_report.txt").read_text()
    assert "### UID ACCURACY" in text and "### LINGUISTICS_TERM ACCURACY" in text
    assert text.endswith(f"### AVERAGE ACCURACY\n{100 * result['score']:.2f}\n\n")


def test_entity_tracking_wug_and_ewok(shared_data, tmp_path):
    folder = task_folder("entity_tracking", shared_data, None)
    result, rows, out, _ = run_task("entity_tracking", folder, tmp_path, max_items_per_subtask=2)
    preds = json.loads((out / "predictions.json").read_text())
    assert sum(len(v["predictions"]) for v in preds.values()) == result["n_items"]
    for subset, entries in preds.items():
        mine = [r for r in rows if r["subset"] == subset]
        for e, r in zip(entries["predictions"], mine, strict=True):
            assert (e["pred"] == r["options"][0]) == r["correct"]  # a tie predicts another
    text = (out / "best_temperature_report.txt").read_text()
    assert "\nregular: " in text and "regular_0_ops: " in text  # file means inside UID

    folder = task_folder("wug", shared_data, None)
    result, rows, out, _ = run_task("wug", folder, tmp_path)
    [(uid, entries)] = json.loads((out / "predictions.json").read_text()).items()
    assert uid == "wug_adj_nominalization" and len(entries["predictions"]) == 200
    assert all(0.0 <= e["prob"] <= 1.0 for e in entries["predictions"])
    text = (out / "best_temperature_report.txt").read_text()
    assert f"### UID SPEARMAN'S RHO\navg: {result['score']:.2f}\n" in text

    ewok = tmp_path / "ewok_filtered"
    ewok.mkdir()
    rec = {
        "Domain": "physical-relations",
        "ContextType": "direct",
        "ContextDiff": "antonym",
        "TargetDiff": "concept swap",
        "Context1": "The box is full.",
        "Context2": "The box is empty.",
        "Target1": "It is heavy.",
        "Target2": "It is light!",
    }
    (ewok / "physical-relations.jsonl").write_text(json.dumps(rec) + "\n")
    result, _, out, _ = run_task("ewok", ewok, tmp_path)
    preds = json.loads((out / "predictions.json").read_text())
    # equal lengths: a tie, counted wrong, so the prediction is Target2
    assert preds == {"physical-relations": {"predictions": [
        {"id": "physical-relations_0", "pred": " It is light!"}]}}  # fmt: skip
    text = (out / "best_temperature_report.txt").read_text()
    for section in ("UID", "CONTEXT_TYPE", "CONTEXT_CONTRAST", "TARGET_CONTRAST"):
        assert f"### {section} ACCURACY\n" in text


def test_reading_files(shared_data, tmp_path):
    folder = task_folder("reading", shared_data, None)
    result, rows, out, written = run_task("reading", folder, tmp_path)
    assert sorted(p.name for p in written) == sorted([
        "prediction.jsonl", "predictions.json", "correlations.txt", "predictive_power.jsonl",
        "predictive_power_spillover.jsonl", "report.txt"])  # fmt: skip
    preds = json.loads((out / "predictions.json").read_text())["reading"]["predictions"]
    assert [p["id"] for p in preds] == list(range(1726))  # the file's row numbers
    assert sum(math.isnan(p["prev_pred"]) for p in preds) == 205  # first measured word of each
    power = [json.loads(line) for line in (out / "predictive_power.jsonl").read_text().splitlines()]
    assert power[0]["Predicted variable"] == "RTfirstfix" and len(power) == 11
    assert set(power[0]) == {"Predicted variable", "Coefficient", "Number of standard deviations",
                             "P-value", "R2", "Change in R2 from baseline", "AIC",
                             "Change in AIC from baseline"}  # fmt: skip
    eye = 100 * result["subtasks"]["eye_tracking"]["score"]
    spr = 100 * result["subtasks"]["self_paced_reading"]["score"]
    assert (out / "report.txt").read_text() == (
        f"EYE TRACKING SCORE: {eye:.2f}\nSELF-PACED READING SCORE: {spr:.2f}\n")  # fmt: skip
    assert len((out / "correlations.txt").read_text().splitlines()) == 11
