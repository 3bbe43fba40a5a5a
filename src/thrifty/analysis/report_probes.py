"""The report's sections on image encoders: ``thrifty probe``'s frozen-feature results (linear
probe, k-NN, few-label curve, multi-label mAP) and ``thrifty probe --finetune``'s end-to-end
few-label curve (``thrifty.eval.image_finetune``), pretrained beside the random-init twin."""

from __future__ import annotations

from thrifty.analysis import report_plots as plots
from thrifty.analysis.report_data import RunData
from thrifty.analysis.report_render import DASH, Image, Section, Table


def _score(value) -> str:
    return DASH if not isinstance(value, (int, float)) else f"{100 * value:.1f}"


def probes_section(runs: list[RunData]) -> Section | None:
    if not any(r.probes for r in runs):
        return None
    section = Section(
        "Frozen-feature probes",
        [
            "Settings chosen on the image set's valid split, accuracy or mAP (%) on its test "
            "split; random init is the same architecture and seed, untrained."
        ],
    )
    table = Table(["run", "encoder", "probe", "test (%)", "chosen on valid"], [])
    curves = Table(["run", "encoder", "test accuracy (%) with N labels (N: mean of seeds)"], [])
    for r in runs:
        for _, result in sorted(r.probes.items()):
            for arm, probes in (result.get("arms") or {}).items():
                if "test" in probes:  # the multi-label probe: one result per encoder
                    probes = {"multi-label mAP": probes}
                for probe, values in probes.items():
                    chosen = ", ".join(f"{k}={v:g}" for k, v in values.items() if k in ("C", "k"))
                    table.rows.append([r.name, arm, probe, _score(values.get("test")), chosen])
            for arm, by_n in (result.get("few_labels") or {}).items():
                points = ", ".join(
                    f"{n}: {_score(v.get('mean'))}" for n, v in by_n.items() if isinstance(v, dict)
                )
                curves.rows.append([r.name, arm, points])
    section.blocks += [table] + ([curves] if curves.rows else [])
    return section


def _mean_std(value) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("mean"), (int, float)):
        return DASH
    std = value.get("std")
    return _score(value["mean"]) + (f" ± {_score(std)}" if isinstance(std, (int, float)) else "")


def _curve(by_n: dict) -> list[tuple[int, float, float]]:
    """(N, mean, std) points of one arm's summary, for the plot."""
    points = []
    for n, v in by_n.items():
        if str(n).isdigit() and isinstance(v, dict) and isinstance(v.get("mean"), (int, float)):
            points.append((int(n), float(v["mean"]), float(v.get("std") or 0.0)))
    return sorted(points)


def image_finetune_section(runs: list[RunData]) -> Section | None:
    results = {r.name: r.image_finetune for r in runs if r.image_finetune}
    if not results:
        return None
    section = Section(
        "Image encoders fine-tuned on N labels",
        [
            "Every weight trained with a linear head on the same nested, class-stratified N "
            "training labels; early stopping and each arm's learning rate chosen on a share of "
            "those N (below two per class: on the N themselves); test accuracy (%), mean ± std "
            "over label seeds. Random init is the same architecture and seed, untrained."
        ],
    )
    sizes = sorted(
        {n for res in results.values() if isinstance(res.get("sizes"), list)
         for n in res["sizes"] if isinstance(n, int)}
    )  # fmt: skip
    table = Table(["run", "encoder", *[f"N={n}" for n in sizes]], [])
    saved = Table(["run", "target", "labels (pretrained)", "labels (random init)", "factor"], [])
    curves, target = {}, None
    for name, result in results.items():
        summary = {k: v for k, v in (result.get("summary") or {}).items() if isinstance(v, dict)}
        for arm, by_n in summary.items():
            table.rows.append([name, arm, *[_mean_std(by_n.get(str(n))) for n in sizes]])
        curves[name] = {arm: _curve(by_n) for arm, by_n in summary.items()}
        ls = result.get("labels_saved") or {}
        target = target if target is not None else ls.get("target")
        factor = ls.get("factor")
        factor = f"{factor:.2f}×" if isinstance(factor, (int, float)) else DASH
        reached = [_labels(ls.get(arm)) for arm in ("pretrained", "random_init")]
        saved.rows.append([name, _score(ls.get("target")), *reached, factor])
    section.blocks += [table, saved]
    if any(points for arms in curves.values() for points in arms.values()):
        png = plots.label_efficiency("images: fine-tuned", "test accuracy", curves,
                                     target, list(results))  # fmt: skip
        section.blocks.append(Image("image_finetune", png, "test accuracy vs labels"))
    return section


def _labels(value) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else "not reached"
