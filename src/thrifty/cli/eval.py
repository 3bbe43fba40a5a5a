"""``thrifty eval RUN --task blimp``: zero-shot scores of a run's checkpoint on ``EVAL_TASKS``.

Each task's result goes to ``<run>/eval/<task>_<backend>[_<variant>].json`` with the run's ledger
and checkpoint step attached, so every number says which data budget produced it (DESIGN.md,
Evaluation; schema in :mod:`thrifty.eval.tasks`).

Where the data comes from, per task: ``--data DIR`` (that folder, one task only); else the first
of ``--data-root``, the parent of the run's ``eval.blimp_data`` (for ``blimp``: that folder) and
``$THRIFTY_DATA`` that holds the task's default sub-folder (``blimp/``,
``babylm_eval/full_eval/...``, ``babylm_eval/fast_eval/...``). ``--task all`` runs every task
whose data is found and leaves out the rest with one info line each (EWoK, which may not be
redistributed, is often absent); a task named on its own must have its data.

Beside thrifty's JSON, each task also writes the BabyLM 2025 pipeline's result files
(:mod:`thrifty.eval.pipeline_layout`), so the pipeline's ``collate_preds.py`` can build a
submission from them::

    <results>/<run name>/<revision>/zero_shot/<backend>/<task>/<dataset>/
        best_temperature_report.txt  predictions.json
    <results>/<run name>/<revision>/zero_shot/<backend>/reading/  (report.txt, predictions.json,
        prediction.jsonl, correlations.txt, predictive_power[_spillover].jsonl)

``<results>`` is ``--results-dir`` (default ``<run>/eval/results``); ``<revision>`` is
``--revision``, by default ``main`` for the run's latest checkpoint (the pipeline's name for the
final model) and the checkpoint's folder name otherwise; ``<task>`` is the pipeline's (``blimp``,
``ewok``, ``entity_tracking``, ``wug_adj``, ``reading``) and ``<dataset>`` the data folder's name.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="zero-shot scores (BLiMP, supplement, entity tracking, EWoK, reading, wug)",
        description="Score a run (latest checkpoint) or a checkpoint folder on zero-shot tasks.",
    )
    p.add_argument("run", help="run folder or checkpoint folder")
    p.add_argument(
        "--task",
        default="blimp",
        help="a task, a comma-separated list, or 'all' (blimp, blimp_filtered, "
        "blimp_supplement, blimp_fast, supplement_fast, entity_tracking, ewok, reading, wug); "
        "'all' leaves out tasks whose data is not found",
    )
    p.add_argument(
        "--data",
        help="folder of the task's *.jsonl[.gz] files, or reading's *.csv[.gz] (one task only)",
    )
    p.add_argument(
        "--data-root",
        help="folder laid out like the BabyLM evaluation data (blimp/, babylm_eval/...); "
        "default: the parent of config eval.blimp_data, then $THRIFTY_DATA",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "causal", "mntp", "mlm"),
        default=None,
        help="scoring backend (default: config eval.backend; auto = the objective's own)",
    )
    p.add_argument(
        "--variant",
        choices=("original", "within_word_l2r"),
        default="original",
        help="PLL variant for mlm/mntp (Kauf & Ivanova 2023 recommend within_word_l2r)",
    )
    p.add_argument(
        "--max-items-per-subtask",
        "--max-pairs-per-paradigm",
        dest="max_items",
        type=int,
        help="seeded subsample of each paradigm / subset / EWoK domain; reading: of its "
        "sentences (default: every item)",
    )
    p.add_argument(
        "--subtasks",
        "--paradigms",
        dest="subtasks",
        help="comma-separated file names without .jsonl[.gz] (default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample")
    p.add_argument("--out", help="result JSON, one task only (default: <run>/eval/...)")
    p.add_argument(
        "--items",
        help="also write per-item scores: a .jsonl file (one task) or a folder (several)",
    )
    p.add_argument(
        "--results-dir",
        help="root of the BabyLM pipeline's result layout (default: <run>/eval/results)",
    )
    p.add_argument(
        "--revision",
        help="revision folder of that layout (default: main for the run's latest checkpoint, "
        "else the checkpoint's name; the pipeline names intermediate ones chck_<N>M)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar over the tasks")
    p.add_argument(
        "--ema",
        action="store_true",
        help="score the moving average of the weights (train.ema_decay)",
    )
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="tokens per forward pass, masked copies included; bounds memory "
        "(default: 2048 on CPU, 65536 on GPU)",
    )
    p.set_defaults(func=run)
    return p


def choose_backend(requested: str, kind: str, objective: str) -> str:
    """The backend to score with; refuses models that assign no log-probs (discriminators)."""
    from thrifty.model_kind import scoring_backend

    own = scoring_backend(kind)
    if own is None:
        raise UserError(
            f"objective {objective!r} trains a discriminator, not a language model: zero-shot "
            f"log-prob scoring ({requested} backend) is not meaningful for it; evaluate it by "
            "fine-tuning instead"
        )
    return own if requested == "auto" else requested


def _suffix(backend: str, variant: str) -> str:
    return backend if variant == "original" else f"{backend}_{variant}"


def run(args: argparse.Namespace) -> int:
    from thrifty.eval import EVAL_TASKS, Scorer, format_table, task_folders, task_names
    from thrifty.progress import tracked
    from thrifty.runs import load_model, model_kind, read_config, read_state, resolve_checkpoint

    names = task_names(args.task)
    if len(names) > 1 and (args.data or args.out):
        raise UserError("--data and --out name one task's folder / file; use --data-root instead")
    if args.max_batch_tokens is not None and args.max_batch_tokens < 1:
        raise UserError(f"--max-batch-tokens must be >= 1, got {args.max_batch_tokens}")
    ckpt = resolve_checkpoint(args.run)
    cfg = read_config(ckpt)  # refuse before loading any weights
    kind = model_kind(read_state(ckpt, verify=False), cfg)
    backend = choose_backend(args.backend or cfg.eval.backend, kind, cfg.objective["name"])
    if args.variant != "original" and backend == "causal":
        raise UserError(f"--variant {args.variant} applies to the mlm and mntp backends")
    section = {"max_items_per_subtask": args.max_items, "seed": args.seed}
    if args.subtasks:
        section["subtasks"] = [s.strip() for s in args.subtasks.split(",") if s.strip()]
    # every folder checked before the first (possibly long) scoring run
    folders = (
        {names[0]: Path(args.data)}
        if args.data
        else task_folders(names, args.data_root, cfg.eval.blimp_data,
                          skip_missing=args.task.strip() == "all")
    )  # fmt: skip
    names = list(folders)

    loaded = load_model(args.run, args.device, ema=args.ema)
    scorer = Scorer(loaded.model, loaded.tokenizer(), backend, args.variant, args.max_batch_tokens)
    suffix = _suffix(backend, args.variant)
    for name in tracked(names, "eval", enabled=len(names) > 1 and not args.quiet):
        task = EVAL_TASKS.build({"name": name, **section})
        items = Path(args.items) if args.items else None
        if items is not None and len(names) > 1:
            items = items / f"{name}_{suffix}.items.jsonl"
        result, pipeline_folder = _evaluate(task, scorer, folders[name], items, args, loaded)
        _report(name, result, format_table)
        result = {
            **result,
            "pipeline_results": str(pipeline_folder),
            "run": str(loaded.run_dir),
            "checkpoint": loaded.checkpoint.name,
            "step": loaded.state.get("step"),
            "objective": loaded.cfg.objective,
            "weights": loaded.weights,
            "ledger": loaded.ledger(),
            "max_items_per_subtask": args.max_items,
            "seed": args.seed,
        }
        out = Path(args.out) if args.out else loaded.run_dir / "eval" / f"{name}_{suffix}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(_strict(result), indent=2) + "\n")
        print(f"wrote {out}")
        print(f"wrote {pipeline_folder}/ (BabyLM pipeline layout)")
    return 0


def _evaluate(task, scorer, folder: Path, items: Path | None, args, loaded):
    """The task's result, and the folder of pipeline files written from its per-item rows."""
    from thrifty.eval.pipeline_layout import read_rows, results_folder, write_results
    from thrifty.runs import latest_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        items = items or Path(tmp) / "items.jsonl"  # the pipeline files need the rows
        result = task.evaluate(scorer, folder, items_path=items)
        rows = read_rows(items)
    latest = latest_checkpoint(loaded.run_dir)
    is_final = latest is not None and latest.resolve() == loaded.checkpoint.resolve()
    revision = args.revision or ("main" if is_final else loaded.checkpoint.name)
    root = Path(args.results_dir) if args.results_dir else loaded.run_dir / "eval" / "results"
    backend = _suffix(scorer.backend, scorer.variant)
    out = results_folder(root, loaded.run_dir.name, revision, backend, task.registry_name, folder)
    write_results(out, task.registry_name, result, rows)
    return result, out


def _strict(value):
    """Plain JSON: NaN (a correlation of constant scores) and inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _report(name: str, result: dict, format_table) -> None:
    """Minimal-pair tasks get the paradigm table; the others their subtasks and score."""
    if "paradigms" in result:
        print(format_table(result))
        return
    metric = result["metric"]
    print(f"{name} ({metric})")
    for sub, res in result["subtasks"].items():
        print(f"  {sub:<40} {res['n']:>6} {res['score']:8.3f}")
    for split, value in result.get("splits", {}).items():
        print(f"  {split + ' (mean over subsets)':<47} {value:8.3f}")
    print(
        f"{name}: {metric} {result['score']:.3f} over {result['n_items']} items, "
        f"{result['seconds']:.1f}s ({result['sentences_per_s']:.0f} sequences/s)"
    )
