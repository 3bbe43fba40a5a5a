"""Report sections for supervised results: fine-tuning (mean ± std over seeds, BabyLM's GLUE
numbers) and label efficiency (metric vs number of labels, with and without pretraining, and
the labels saved at a target metric; the ER-notes protocol)."""

from __future__ import annotations

import statistics

from thrifty.analysis import report_plots as plots
from thrifty.analysis.report_data import RunData
from thrifty.analysis.report_render import DASH, Image, Section, Table, fmt_score


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def finetune_section(runs: list[RunData]) -> Section | None:
    tasks = sorted({t for r in runs for t in r.finetune})
    if not tasks:
        return None
    table = Table(["task", "metric", *[r.name for r in runs]], [])
    for task in tasks:
        first = next(r.finetune[task] for r in runs if task in r.finetune)
        primary = first.get("metric")
        metrics = list(dict.fromkeys([m for m in [primary, *first.get("metrics", [])] if m]))
        for metric in metrics:
            cells = []
            for r in runs:
                res = r.finetune.get(task)
                mean = _number(((res or {}).get("mean") or {}).get(metric))
                if mean is None:
                    cells.append(DASH)
                    continue
                std = _number((res.get("std") or {}).get(metric)) or 0.0
                seeds = len(res.get("seeds") or res.get("per_seed") or [])
                init = (
                    "" if (res.get("settings") or {}).get("pretrained", True) else ", random init"
                )
                cells.append(f"{fmt_score(mean)} ± {fmt_score(std)} ({seeds} seeds{init})")
            label = f"{metric} (%)" + (" (selection)" if metric == primary else "")
            table.rows.append([task, label, *cells])
    note = (
        "Mean ± standard deviation over fine-tuning seeds, ×100, on each task's validation split."
    )
    return Section("Fine-tuning", [table, note])


def _points(arm: dict) -> list[tuple[int, float, float]]:
    """(labels, mean, std) per size of one arm; sizes that are not numbers are skipped."""
    out = []
    for size, values in arm.items():
        try:
            n = int(size)
        except (TypeError, ValueError):
            continue
        vals = [
            v for v in (values if isinstance(values, list) else [values]) if _number(v) is not None
        ]
        if vals:
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0
            out.append((n, statistics.fmean(vals), std))
    return sorted(out)


def _labels(value) -> str:
    return f"{value:,.0f}" if _number(value) is not None else "not reached"


def label_efficiency_section(runs: list[RunData]) -> Section | None:
    tasks = sorted({t for r in runs for t in r.label_efficiency})
    if not tasks:
        return None
    section, names = Section("Label efficiency"), [r.name for r in runs]
    saved = Table(
        [
            "task",
            "run",
            "metric",
            "target",
            "labels (pretrained)",
            "labels (random init)",
            "factor",
        ],
        [],
    )
    for task in tasks:
        curves, metric, target = {}, None, None
        for r in runs:
            res = r.label_efficiency.get(task)
            if not res:
                continue
            metric = metric or res.get("metric")
            arms = res.get("arms") or {}
            curves[r.name] = {arm: _points(v) for arm, v in arms.items() if isinstance(v, dict)}
            ls = res.get("labels_saved") or {}
            target = target if target is not None else _number(ls.get("target"))
            factor = _number(ls.get("factor"))
            saved.rows.append(
                [
                    task,
                    r.name,
                    str(res.get("metric", DASH)),
                    f"{ls['target']:.3g}" if _number(ls.get("target")) is not None else DASH,
                    _labels(ls.get("pretrained")),
                    _labels(ls.get("random_init")),
                    f"{factor:.2f}×" if factor is not None else DASH,
                ]
            )
        if any(any(points for points in arms.values()) for arms in curves.values()):
            png = plots.label_efficiency(task, metric or "metric", curves, target, names)
            section.blocks.append(
                Image(f"label_efficiency_{task}", png, f"{task}: {metric} vs labels")
            )
    note = (
        "Mean ± std over seeds at each number of labelled examples; solid: pretrained backbone, "
        "dashed: the same architecture from random init. Labels saved: how many labels each "
        "arm needs to reach the target metric, and their ratio."
    )
    section.blocks += [saved, note]
    return section
