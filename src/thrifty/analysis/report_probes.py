"""The report's section on image encoders: ``thrifty probe``'s frozen-feature results (linear
probe, k-NN, few-label curve, multi-label mAP), pretrained beside the random-init twin."""

from __future__ import annotations

from thrifty.analysis.report_data import RunData
from thrifty.analysis.report_render import DASH, Section, Table


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
