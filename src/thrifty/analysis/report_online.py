"""The report's sections on decision-making: online reinforcement learning (``thrifty ppo``
run folders: success rate and return on held-out levels vs environment steps, each run's
first and final evaluation, arm and budget), and DPT policies deployed by ``thrifty
bandit-eval`` (cumulative regret vs pulls) and ``darkroom-eval`` (return per episode), beside
the baselines they were compared with."""

from __future__ import annotations

from thrifty.analysis import report_plots as plots
from thrifty.analysis.report_data import RunData
from thrifty.analysis.report_render import DASH, Image, Section, Table


def _line(rows: list[dict], key: str) -> tuple[list, list]:
    points = [(r["env_steps"], r[key]) for r in rows if "env_steps" in r and key in r]
    return [p[0] for p in points], [p[1] for p in points]


def online_section(runs: list[RunData]) -> Section | None:
    online = [r for r in runs if r.online_rows]
    if not online:
        return None
    names = [r.name for r in online]
    panels = [
        (title, {r.name: _line(r.online_rows, key) for r in online})
        for title, key in (("success rate", "success_rate"), ("mean return", "mean_return"))
    ]
    section = Section(
        "Online RL: success vs environment steps",
        [
            "Evaluated on the same held-out levels (never demonstrated) before the first step "
            "and every eval interval; environment steps are the online budget on the ledger."
        ],
    )
    section.blocks.append(
        Image("online", plots.curves(panels, "environment steps", names), "success vs steps")
    )
    table = Table(["run", "arm", "environment steps", "success before", "success after"], [])
    for r in online:
        result, first, last = r.online_result, r.online_rows[0], r.online_rows[-1]
        table.rows.append(
            [
                r.name,
                str(result.get("arm", DASH)),
                f"{last.get('env_steps', 0):,}",
                f"{first.get('success_rate', 0):.2f}",
                f"{last.get('success_rate', 0):.2f}",
            ]
        )
    section.blocks.append(table)
    return section


DEPLOYMENT_AXES = {  # eval file -> (panel title, x label, x of the i-th value)
    "bandit": ("cumulative regret (lower is better)", "pulls", lambda i: i + 1),
    "darkroom": ("online return per episode", "episode", lambda i: i + 1),
}


def deployment_section(runs: list[RunData]) -> Section | None:
    deployed = [r for r in runs if r.deployments]
    if not deployed:
        return None
    section = Section(
        "Decision-making: deployed DPT policies",
        ["Online, on fresh tasks of the run's task family (mean over evaluation seeds)."],
    )
    for kind, (title, x_label, x_of) in DEPLOYMENT_AXES.items():
        lines = {}
        for r in deployed:
            for name, curve in (r.deployments.get(kind, {}).get("online") or {}).items():
                ys = curve.get("mean") or []
                label = r.name if name == "dpt" else f"{name} ({r.name})"
                lines[label] = ([x_of(i) for i in range(len(ys))], ys)
        if lines:
            png = plots.curves([(title, lines)], x_label, list(lines))
            section.blocks.append(Image(f"deployed_{kind}", png, title))
            table = Table(["policy", f"final {title.split(' (')[0]}"], [])
            table.rows += [[label, f"{ys[-1]:.2f}"] for label, (_, ys) in lines.items() if ys]
            section.blocks.append(table)
    return section
