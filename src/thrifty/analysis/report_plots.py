"""The report's figures, drawn with matplotlib's object API on the Agg canvas and returned as
PNG bytes (no pyplot, so no global state and no display is ever touched). Every figure takes
the report's list of run names, so a run keeps its colour from one figure to the next."""

from __future__ import annotations

import io
import math

from thrifty.errors import UserError

DPI = 110
LINESTYLES = {"pretrained": "-", "random_init": "--"}


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1):
    """A figure on the Agg canvas and its axes, flattened."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError(
            "thrifty report needs matplotlib: pip install 'thrifty[report]' "
            "(or pip install matplotlib)"
        ) from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _colour(run: str, names: list[str]) -> str:
    return f"C{names.index(run) % 10}" if run in names else "0.3"


def _words_axis(ax, label: str = "words seen") -> None:
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel(label)
    ax.grid(alpha=0.3)


def curves(
    panels: list[tuple[str, dict[str, tuple[list, list]]]], x_label: str, names: list[str]
) -> bytes:
    """Line plots side by side; each panel is (title, {run: (xs, ys)})."""
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = _figure(4.2 * ncols, 3.2 * nrows, nrows, ncols)
    for ax, (title, lines) in zip(axes, panels):
        for run, (xs, ys) in lines.items():
            marker = "o" if len(xs) < 8 else None
            ax.plot(xs, ys, label=run, color=_colour(run, names), linewidth=1.4, marker=marker)
        ax.set_title(title, fontsize=10)
        _words_axis(ax, x_label)
        ax.legend(fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return _png(fig)


def grouped_bars(
    groups: list[str], series: dict[str, list[float]], y_label: str, names: list[str]
) -> bytes:
    """One bar per run within each group (e.g. BLiMP phenomena), chance line at 50%."""
    fig, (ax,) = _figure(max(6.0, 0.55 * len(groups) * max(len(series), 1) + 1.5), 4.2)
    width = 0.8 / max(len(series), 1)
    for i, (run, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [100 * v for v in values], width, label=run, color=_colour(run, names))
    ax.axhline(50, color="0.4", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(range(len(groups)), groups, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(y_label)
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(len(series) + 1, 4))
    return _png(fig)


def label_efficiency(
    task: str, metric: str, runs: dict[str, dict], target, names: list[str]
) -> bytes:
    """Metric vs number of labels (log scale), mean ± std over seeds, one colour per run and
    one line style per arm (pretrained solid, random init dashed)."""
    fig, (ax,) = _figure(6.0, 4.0)
    for run, arms in runs.items():
        for arm, points in arms.items():
            if not points:
                continue
            xs, means, stds = zip(*points)
            ax.errorbar(
                xs,
                means,
                yerr=stds,
                color=_colour(run, names),
                linestyle=LINESTYLES.get(arm, ":"),
                marker="o",
                markersize=3,
                capsize=2,
                label=f"{run}: {arm.replace('_', ' ')}",
            )
    if isinstance(target, int | float):
        ax.axhline(target, color="0.4", linestyle=":", linewidth=1, label=f"target {target:g}")
    ax.set_xscale("log", base=2)
    sizes = sorted({x for arms in runs.values() for pts in arms.values() for x, _, _ in pts})
    ax.set_xticks(sizes, [f"{x:,}" for x in sizes], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel(metric)
    ax.set_title(task, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
