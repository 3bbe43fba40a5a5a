"""The BabyLM 2025 pipeline's result files, written beside thrifty's own JSON, so that the
pipeline's tools (``collate_preds.py`` builds a leaderboard submission from them) read thrifty's
scores as their own.

Layout, as ``babylm/evaluation-pipeline-2025`` writes it (``sentence_zero_shot/run.py``,
``reading/run.py``) and ``collate_preds.py`` reads it::

    <results>/<model>/<revision>/zero_shot/<backend>/<task>/<dataset>/
        best_temperature_report.txt  predictions.json
    <results>/<model>/<revision>/zero_shot/<backend>/reading/
        report.txt  predictions.json  prediction.jsonl  correlations.txt
        predictive_power.jsonl  predictive_power_spillover.jsonl

``<task>`` is the pipeline's task (``blimp`` for every BLiMP-style folder, ``ewok``,
``entity_tracking``, ``wug_adj``), ``<dataset>`` the data folder's name (``blimp_filtered``,
``supplement_filtered``, ``blimp_fast``, ``supplement_fast``, ``ewok_filtered``,
``entity_tracking``, ``wug_adj_nominalization``), as the pipeline names it after ``--data_path``.
``predictions.json`` is ``{uid: {"predictions": [{"id": "<uid>_<n>", "pred": completion}]}}``
with n counting a uid's items in file order (wug adds ``prob``, the softmax of the first
sentence); reading's is ``{"reading": {"predictions": [{"id": row, "pred": surprisal,
"prev_pred": ...}]}}``. Report numbers are percent with two decimals (Spearman's rho as is).

Where thrifty's files differ, and why: no temperature is swept (the report says 1.00, the
pipeline's default); a predicted completion is the correct one only when thrifty counts the item
correct, so a tie predicts the wrong one and collated accuracy equals thrifty's; BLiMP reports
carry the UID and LINGUISTICS_TERM sections but no FIELD (thrifty does not read that field);
``mlm`` / ``mntp`` with ``within_word_l2r`` go to ``<backend>_within_word_l2r/``, a variant the
pipeline lacks; the original BLiMP (task ``blimp``) goes to ``blimp/blimp/``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from thrifty.atomic import write_text_atomic
from thrifty.eval.reading import EYE_TRACKING, MEASURES, SELF_PACED

PIPELINE_TASKS = {
    "blimp": "blimp",
    "blimp_filtered": "blimp",
    "blimp_supplement": "blimp",
    "blimp_fast": "blimp",
    "supplement_fast": "blimp",
    "entity_tracking": "entity_tracking",
    "ewok": "ewok",
    "wug": "wug_adj",
    "reading": "reading",
}


def results_folder(
    root: Path, model: str, revision: str, backend: str, task: str, data: Path
) -> Path:
    """Where the pipeline keeps one task's files; ``data`` is the folder (or file) read."""
    base = Path(root) / model / revision / "zero_shot" / backend / PIPELINE_TASKS.get(task, task)
    return base if task == "reading" else base / Path(data).name


def read_rows(path: Path) -> list[dict]:
    """Per-item rows as a task's ``items_path`` holds them."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_results(folder: Path, task: str, result: dict, rows: list[dict]) -> list[Path]:
    """Write one task's pipeline files into ``folder``; returns the paths written."""
    if task == "reading":
        files = _reading_files(result, rows)
    else:
        preds, sections, average, metric = _SENTENCE_TASKS[PIPELINE_TASKS.get(task, "blimp")](
            result, rows
        )
        files = {
            "best_temperature_report.txt": report(sections, average, metric),
            "predictions.json": json.dumps(preds),
        }
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_text_atomic(folder / name, text)
    return [folder / name for name in files]


def report(sections: dict[str, dict[str, float]], average: float, metric: str) -> str:
    """``best_temperature_report.txt``, as ``create_evaluation_report`` prints it."""
    lines = ["TEMPERATURE: 1.00", ""]
    for section, values in sections.items():
        lines.append(f"### {section.upper()} {metric}")
        lines += [f"{name}: {value:.2f}" for name, value in values.items()]
        lines.append("")
    return "\n".join([*lines, f"### AVERAGE {metric}", f"{average:.2f}", "", ""])


def _numbered(rows: list[dict], uid_key: str, pred) -> dict:
    out: dict[str, dict[str, list]] = {}
    for row in rows:
        uid = row[uid_key]
        entries = out.setdefault(uid, {"predictions": []})["predictions"]
        entries.append({"id": f"{uid}_{len(entries)}", **pred(row)})
    return out


def _percent(values: dict[str, float]) -> dict[str, float]:
    return {k: 100.0 * v for k, v in values.items()}


def _blimp(result: dict, rows: list[dict]):
    preds = _numbered(rows, "paradigm", lambda r: {
        "pred": r["sentence_good"] if r["correct"] else r["sentence_bad"]})  # fmt: skip
    sections = {"UID": _percent({k: v["score"] for k, v in result["subtasks"].items()})}
    if set(result.get("phenomena", {})) != set(result["subtasks"]):
        sections["LINGUISTICS_TERM"] = _percent(result["phenomena"])
    return preds, sections, 100.0 * result["score"], "ACCURACY"


def _ewok(result: dict, rows: list[dict]):
    preds = _numbered(rows, "domain", lambda r: {
        "pred": " " + (r["target1"] if r["correct"] else r["target2"])})  # fmt: skip
    sections = {
        "UID": _percent({k: v["score"] for k, v in result["subtasks"].items()}),
        "CONTEXT_TYPE": _percent(result["context_types"]),
        "CONTEXT_CONTRAST": _percent(result["context_contrasts"]),
        "TARGET_CONTRAST": _percent(result["target_contrasts"]),
    }
    return preds, sections, 100.0 * result["score"], "ACCURACY"


def _entity_tracking(result: dict, rows: list[dict]):
    preds = _numbered(rows, "subset", lambda r: {"pred": r["options"][r["predicted"]]})
    # The pipeline lists each file's mean after its subsets, in the same section.
    uid = {k: v["score"] for k, v in result["subtasks"].items()} | result["splits"]
    return preds, {"UID": _percent(uid)}, 100.0 * result["score"], "ACCURACY"


def _wug(result: dict, rows: list[dict]):
    def pred(r):
        first = r["scores"][0] >= r["scores"][1]  # torch.max keeps the first of a tie
        return {"pred": r["sentences"][0 if first else 1], "prob": r["model_prob"]}

    preds = _numbered(rows, "file", pred)
    score = _nan(result["score"])
    return preds, {"UID": {"avg": score}}, score, "SPEARMAN'S RHO"


_SENTENCE_TASKS = {
    "blimp": _blimp,
    "ewok": _ewok,
    "entity_tracking": _entity_tracking,
    "wug_adj": _wug,
}


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _reading_files(result: dict, rows: list[dict]) -> dict[str, str]:
    prev = [_nan(r["prev_surprisal"]) for r in rows]
    per_word = "".join(
        json.dumps({"Index": r["index"], "Sentence": r["context"], "Word": r["word"],
                    "Logprob": r["surprisal"], "Prev_Logprob": p}) + "\n"
        for r, p in zip(rows, prev, strict=True)
    )  # fmt: skip
    predictions = {"reading": {"predictions": [
        {"id": r["index"], "pred": r["surprisal"], "prev_pred": p}
        for r, p in zip(rows, prev, strict=True)
    ]}}  # fmt: skip
    correlations = "".join(f"{m}\t{_nan(result['correlations'][m]):.4f}\n" for m in MEASURES)
    plain, spill = result["measures"], result["measures_spillover"]
    eye = sum(100.0 * _nan(plain[m]["relative_delta_r2"]) for m in EYE_TRACKING) / 4
    spr = 100.0 * _nan(spill[SELF_PACED]["relative_delta_r2"])
    return {
        "prediction.jsonl": per_word,
        "predictions.json": json.dumps(predictions),
        "correlations.txt": correlations,
        "predictive_power.jsonl": _power(plain),
        "predictive_power_spillover.jsonl": _power(spill),
        "report.txt": f"EYE TRACKING SCORE: {eye:.2f}\nSELF-PACED READING SCORE: {spr:.2f}\n",
    }


def _power(measures: dict[str, dict]) -> str:
    """One line per measure with the pipeline's keys."""
    keys = {"Coefficient": "coefficient", "Number of standard deviations": "t",
            "P-value": "p_value", "R2": "r2", "Change in R2 from baseline": "delta_r2",
            "AIC": "aic", "Change in AIC from baseline": "delta_aic"}  # fmt: skip
    return "".join(
        json.dumps({"Predicted variable": m, **{k: _nan(measures[m][v]) for k, v in keys.items()}})
        + "\n"
        for m in MEASURES
    )
