"""``thrifty report``: one page that puts runs side by side, with the budget behind every number.

Sections appear only when some run has the data: the ledger, model size and training FLOPs of
each run (first, because a score means little without the budget that bought it); learning
curves from ``metrics.jsonl``; zero-shot results from ``eval/<task>_<backend>.json`` (BLiMP by
phenomenon as a grouped bar chart, unknown tasks by their headline score and sub-scores);
fine-tuning (``eval/finetune_<task>.json``, mean ± std over seeds, as BabyLM reports GLUE); and
label-efficiency curves (``eval/label_efficiency_<task>.json``, the protocol of the ER-notes
paper: metric vs number of labels with and without pretraining).

Output: a self-contained HTML file and a markdown twin (``report_render``). Reads run folders
only; never imports the training loop.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

from thrifty import __version__
from thrifty.analysis import report_plots as plots
from thrifty.analysis.report_data import RunData, load_runs, sub_scores, zero_shot_score
from thrifty.analysis.report_ledger import ledger_section
from thrifty.analysis.report_online import deployment_section, online_section
from thrifty.analysis.report_probes import image_finetune_section, probes_section
from thrifty.analysis.report_render import (
    CORRELATIONS,
    DASH,
    Image,
    Section,
    Table,
    fmt_score,
    write_report,
)
from thrifty.analysis.report_training import finetune_section, label_efficiency_section

MAX_PANELS = 6


def _curve(rows: list[dict], key: str, x: str) -> tuple[list, list]:
    pts = [(r[x], r[key]) for r in rows if isinstance(r.get(key), int | float) and x in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def _panel(runs: list[RunData], key: str, x: str, validation: bool) -> dict:
    """{run: (xs, ys)} of one metric, runs without it left out."""
    lines = {r.name: _curve(r.val_rows if validation else r.train_rows, key, x) for r in runs}
    return {name: line for name, line in lines.items() if line[0]}


def _last_values(runs: list[RunData]) -> Table:
    table = Table(["run", "last step", "words seen", "train loss", "validation loss"], [])
    for r in runs:
        last = r.train_rows[-1] if r.train_rows else {}
        val = r.val_rows[-1] if r.val_rows else {}
        words = (last or val).get("words")
        table.rows.append(
            [
                r.name,
                str((last or val).get("step", DASH)),
                f"{words:,.0f}" if isinstance(words, int | float) else DASH,
                f"{last['loss']:.4f}" if "loss" in last else DASH,
                f"{val['val_loss']:.4f}" if "val_loss" in val else DASH,
            ]
        )
    return table


def curves_section(runs: list[RunData]) -> Section | None:
    """Training and validation loss vs words seen, then the other validation metrics."""
    if not any(r.train_rows or r.val_rows for r in runs):
        return None
    rows = [row for r in runs for row in r.train_rows + r.val_rows]
    x = "words" if all("words" in row for row in rows) else "step"
    x_label = "words seen" if x == "words" else "optimizer step"
    losses = [
        ("training loss", _panel(runs, "loss", x, validation=False)),
        ("validation loss", _panel(runs, "val_loss", x, validation=True)),
    ]
    losses = [(title, lines) for title, lines in losses if lines]
    extra = []
    for key in sorted({k for r in runs for row in r.val_rows for k in row}):
        values = {row.get(key) for r in runs for row in r.val_rows}
        values = {v for v in values if isinstance(v, int | float)}
        # a constant (e.g. a fixed validation mask rate) says nothing
        # validation metrics, and those measured on fixed training samples (MoE pathways)
        wanted = key.startswith(("val_", "pathway_")) and key != "val_loss"
        if wanted and len(values) > 1:
            title = key.removeprefix("val_").replace("_", " ")
            extra.append((title, _panel(runs, key, x, validation=True)))
    section, names = Section("Learning curves"), [r.name for r in runs]
    if losses:
        section.blocks.append(
            Image("curves", plots.curves(losses, x_label, names), "loss vs words seen")
        )
    if extra:
        png = plots.curves(extra[:MAX_PANELS], x_label, names)
        section.blocks.append(Image("validation_metrics", png, "validation metrics vs words seen"))
    section.blocks.append(_last_values(runs))
    return section


def _eval_label(key: str, result: dict) -> str:
    """``task (backend[/variant])``; the task comes from the file name when the JSON lacks it."""
    backend, variant = result.get("backend"), result.get("variant") or "original"
    if not isinstance(backend, str):
        return key
    suffix = f"_{backend}" + ("" if variant == "original" else f"_{variant}")
    task = result.get("task") or key.removesuffix(suffix)
    return f"{task} ({backend}{'' if variant == 'original' else '/' + variant})"


def _annotate(cell: str, result: dict, run: RunData) -> str:
    """Say when a score comes from a subsample or from an older checkpoint than the latest."""
    notes = []
    cap = result.get("max_items_per_subtask") or result.get("max_pairs_per_paradigm")
    if cap:
        notes.append(f"≤{cap} items per subtask")
    step = result.get("step")
    if step is not None and run.model.get("step") not in (None, step):
        notes.append(f"step {step}")
    return f"{cell} ({'; '.join(notes)})" if notes else cell


def zero_shot_section(runs: list[RunData]) -> Section | None:
    keys = sorted(
        {k for r in runs for k in r.zero_shot}, key=lambda k: (not k.startswith("blimp_"), k)
    )
    if not keys:
        return None
    section = Section("Zero-shot evaluation")
    summary = Table(["task (backend)", "metric", *[r.name for r in runs]], [])
    details: list = []
    for key in keys:
        results = {r.name: r.zero_shot.get(key) for r in runs}
        first = next(v for v in results.values() if v is not None)
        label, metric = _eval_label(key, first), first.get("metric", "accuracy")
        cells = []
        for r in runs:
            res = results[r.name]
            cells.append(
                DASH if res is None else _annotate(fmt_score(zero_shot_score(res), metric), res, r)
            )
        summary.rows.append([label, f"{metric}{'' if metric in CORRELATIONS else ' (%)'}", *cells])
        details += _sub_blocks(key, label, metric, runs, results)
    section.blocks = [summary, *details]
    return section


def _sub_blocks(key: str, label: str, metric: str, runs: list[RunData], results: dict) -> list:
    """Per-phenomenon chart and table for BLiMP-like results; a sub-score table otherwise."""
    subs = {name: sub_scores(res) if res else {} for name, res in results.items()}
    units = sorted({n for s in subs.values() for n in s})
    if not units:
        return []
    present = [r.name for r in runs if subs[r.name]]
    rows = [[n, *[fmt_score(subs[r].get(n), metric) for r in present]] for n in units]
    blocks: list = []
    has_phenomena = any(isinstance((res or {}).get("phenomena"), dict) for res in results.values())
    if has_phenomena:
        series = {r: [subs[r].get(n, math.nan) for n in units] for r in present}
        png = plots.grouped_bars(units, series, f"{metric} (%)", [r.name for r in runs])
        blocks += [
            f"{label} by phenomenon (mean over each phenomenon's paradigms).",
            Image(f"zero_shot_{key}", png, f"{label} by phenomenon"),
        ]
    unit = "phenomenon" if has_phenomena else "subtask"
    collapsed = None if len(rows) <= 20 else f"{label}: {len(rows)} {unit} scores"
    blocks.append(Table([unit, *present], rows, collapsed))
    paradigms = {r: (results[r] or {}).get("paradigms") for r in present}
    if has_phenomena and all(isinstance(p, dict) for p in paradigms.values()):
        uids = sorted({u for p in paradigms.values() for u in p})
        prow = [
            [u, *[fmt_score((paradigms[r].get(u) or {}).get("accuracy"), metric) for r in present]]
            for u in uids
        ]
        blocks.append(Table(["paradigm", *present], prow, f"{label}: {len(uids)} paradigms"))
    return blocks


def _problems_section(runs: list[RunData]) -> Section | None:
    problems = [f"{r.name}: {p}" for r in runs for p in r.problems]
    if not problems:
        return None
    return Section("Problems reading the runs", ["Left out of this report:", *problems])


def build_report(paths: list[str | Path], out: str | Path, title: str | None = None) -> dict:
    """Read the runs and write the HTML report, its markdown twin and the PNG folder."""
    runs = load_runs(paths)
    builders = (
        ledger_section,
        curves_section,
        zero_shot_section,
        finetune_section,
        label_efficiency_section,
        probes_section,
        image_finetune_section,
        online_section,
        deployment_section,
        _problems_section,
    )
    sections = [s for build in builders if (s := build(runs)) is not None]
    title = title or f"thrifty report: {', '.join(r.name for r in runs)}"
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    meta = f"thrifty {__version__}, {stamp}; runs: " + ", ".join(str(r.path) for r in runs)
    written = write_report(title, meta, sections, Path(out))
    return {**written, "sections": [s.title for s in sections]}
