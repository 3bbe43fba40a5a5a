"""What a submission's main branch records besides the model: the ledger, the rule check
(audit.json), the evaluation results (results/), submission.json and the card (README.md).

Results are thrifty's own JSONs, copied unchanged: every ``RUN/eval/*.json`` written for the
final checkpoint (``thrifty eval``, ``thrifty finetune``, ``thrifty label-efficiency``; schema in
``thrifty.eval.tasks``). Those of other checkpoints are left out and listed in submission.json.
The files ``thrifty eval`` wrote in the 2025 pipeline's layout (``RUN/eval/results/``, see
``thrifty.eval.pipeline_layout``) are copied to ``results/pipeline/`` as they are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import safe_open

from thrifty.config import RunConfig, to_dict
from thrifty.data.budget import LEDGER_FILE, Ledger
from thrifty.export.submission_card import submission_card
from thrifty.runs import read_state

if TYPE_CHECKING:
    from thrifty.export.submission import Revision, Submission

FORMAT_VERSION = 1


def audit_record(ledger: Ledger) -> dict:
    """``thrifty audit``'s verdict and the numbers it rests on, for audit.json."""
    problems = ledger.violations()
    passes, sets = ledger.max_passes()
    return {
        "verdict": "fail" if problems else "pass",
        "violations": problems,
        "checked_by": "thrifty audit (thrifty.data.budget.Ledger.violations)",
        "budget_words": ledger.budget_words,
        "charged_words": ledger.charged_words(),
        "words_seen": ledger.words_seen,
        "train_words": ledger.train_words,
        "epochs": ledger.epochs,
        "max_passes": passes,
        "max_passes_over": sets,
        "max_epochs": ledger.max_epochs,
        "summary": ledger.summary_lines(),
    }


def final_results(run_dir: Path, final: Path, weights: str) -> tuple[list[Path], list[dict]]:
    """``eval/*.json`` of ``run_dir`` written for checkpoint ``final`` with these weights, and
    the others (file, checkpoint) that are left out."""
    kept, left_out = [], []
    for path in sorted((Path(run_dir) / "eval").glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            left_out.append({"file": path.name, "checkpoint": None, "why": "unreadable"})
            continue
        same = result.get("checkpoint") == final.name
        if same and result.get("weights", weights) == weights:
            kept.append(path)
        else:
            left_out.append({"file": path.name, "checkpoint": result.get("checkpoint")})
    return kept, left_out


def _parameters(weights: Path) -> int:
    with safe_open(str(weights), "pt") as f:
        total = 0
        for name in f.keys():
            count = 1
            for n in f.get_slice(name).get_shape():
                count *= n
            total += count
        return total


def _recipe(cfg: RunConfig, final: Revision, repo: Path) -> dict:
    """What the card states about how the model was trained."""
    state = read_state(final.checkpoint, verify=False)
    m, t = to_dict(cfg.model), to_dict(cfg.train)
    model = {k: m[k] for k in ("size", "d_model", "n_layers", "n_heads", "d_ff", "vocab_size")}
    model |= {k: m[k]["name"] for k in ("block", "attention", "mlp", "linear")}
    model["parameters"] = _parameters(repo / "model.safetensors")
    train = {k: t[k] for k in ("optimizer", "lr", "schedule", "warmup_steps", "min_lr_ratio")}
    train |= {k: t[k] for k in ("weight_decay", "grad_clip", "batch_size", "grad_accum", "seed")}
    train |= {k: t[k] for k in ("max_steps", "max_words", "max_epochs", "ema_decay") if t[k]}
    rows = state.get("rows_per_step")
    if rows:
        train["tokens_per_step"] = rows * cfg.data.seq_len
    train["steps"] = final.step
    return {
        "objective": cfg.objective,
        "model": model,
        "train": train,
        "data": {"path": cfg.data.path, "seq_len": cfg.data.seq_len, "sampler": cfg.data.sampler},
    }


def _headline(result: dict) -> dict:
    score = result.get("score", result.get("mean"))
    keys = ("task", "backend", "variant", "metric")
    return {**{k: result[k] for k in keys if k in result}, "score": score}


def write_main(
    repo: Path, sub: Submission, run_dir: Path, ledger: Ledger, cfg: RunConfig, kept: list[Path]
) -> None:
    """The files main holds besides the model: ledger, rule check, results, card."""
    shutil.copyfile(run_dir / LEDGER_FILE, repo / LEDGER_FILE)  # the very file audited
    audit = audit_record(ledger)
    (repo / "audit.json").write_text(json.dumps(audit, indent=2) + "\n")
    results = []
    if kept:
        (repo / "results").mkdir()
    for path, name in zip(kept, sub.results):
        shutil.copyfile(path, repo / name)
        results.append({"file": name, **_headline(json.loads(path.read_text()))})
    pipeline = run_dir / "eval" / "results"  # `thrifty eval`'s files in the pipeline's layout
    if pipeline.is_dir():
        shutil.copytree(pipeline, repo / "results" / "pipeline", dirs_exist_ok=True)
    export = json.loads((repo / "thrifty.json").read_text())
    info = {
        "format": "thrifty-babylm-submission",
        "version": FORMAT_VERSION,
        "run": str(run_dir.resolve()),
        "name": cfg.name,
        "final": sub.final.record(),
        "revisions": [r.record() for r in sub.revisions],
        "babylm_marks": cfg.train.babylm_marks,
        "missing_marks": sub.missing_marks,
        "remote_code": sub.remote_code,
        "architecture": export["architecture"],
        "auto_classes": export["auto_classes"],
        "weights": export["weights"],
        "audit": {k: audit[k] for k in ("verdict", "violations")},
        "ledger": {k: audit[k] for k in ("budget_words", "charged_words", "words_seen")}
        | {k: audit[k] for k in ("epochs", "max_passes", "max_epochs")},
        "recipe": _recipe(cfg, sub.final, repo),
        "results": results,
        "results_left_out": sub.left_out,
    }
    (repo / "submission.json").write_text(json.dumps(info, indent=2) + "\n")
    card = submission_card(info, (repo / "README.md").read_text())
    (repo / "README.md").write_text(card)
