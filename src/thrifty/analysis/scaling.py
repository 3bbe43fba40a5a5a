"""Power laws with an asymptote, L(x) = A / x^α + E, and the effective data multiplier.

Kim et al. 2025, "Pre-training under infinite compute" (papers/infinite_compute.md §2.1, §2.5):
compare recipes by the asymptote E of a fit over a scalable knob x (parameters N, ensemble
size K, training words D) rather than at one compute point, and express a recipe's gain as a
**data multiplier**: the words the baseline recipe would need to reach the recipe's loss,
divided by the words the recipe used.

Fits are bounded nonlinear least squares (scipy) from several starting points; confidence
intervals come from a bootstrap: resampling the replicates at each x when there are some
(seeds), otherwise resampling residuals (inflated by sqrt(n / (n - 3)) for the three fitted
parameters). With three points there is no residual left, so no interval is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thrifty.errors import UserError

PARAMS = ("A", "alpha", "E")
ALPHA_MAX = 10.0  # exponents in the paper are 0.2-1.0; 10 only keeps the search bounded


def _least_squares():
    try:
        from scipy.optimize import least_squares
    except ImportError:
        raise UserError(
            "scaling fits need scipy: pip install 'thrifty[analysis]' (or pip install scipy)"
        ) from None
    return least_squares


@dataclass(frozen=True)
class PowerLaw:
    """L(x) = A / x^alpha + E."""

    A: float
    alpha: float
    E: float

    def __call__(self, x):
        return self.A * np.power(np.asarray(x, dtype=float), -self.alpha) + self.E

    def inverse(self, loss: float) -> float:
        """The x at which the law reaches ``loss``; inf when ``loss`` is at or below E."""
        if loss <= self.E or self.alpha <= 0:
            return float("inf")
        log_x = (math.log(self.A) - math.log(loss - self.E)) / float(self.alpha)
        return math.exp(log_x) if log_x < 700 else float("inf")  # beyond float range: unbounded


@dataclass
class Fit:
    law: PowerLaw
    x: np.ndarray
    y: np.ndarray
    rmse: float
    boot: np.ndarray | None  # (n_boot, 3): A, alpha, E of each bootstrap refit
    level: float
    method: str  # "replicates", "residuals" or "none"

    def ci(self, name: str) -> tuple[float, float] | None:
        """Percentile interval of one parameter (A, alpha or E); None without a bootstrap."""
        if self.boot is None:
            return None
        column = self.boot[:, PARAMS.index(name)]
        return _interval(column, self.level)

    def summary(self) -> str:
        parts = []
        for name in PARAMS:
            value = getattr(self.law, name)
            ci = self.ci(name)
            span = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
            parts.append(f"{name} = {value:.4g}{span}")
        pct = (
            f"{100 * self.level:.0f}% CI, {self.method} bootstrap" if self.boot is not None else ""
        )
        tail = f" ({pct})" if pct else " (no CI: 3 points leave no residual)"
        return f"L(x) = A / x^alpha + E: {', '.join(parts)}; rmse {self.rmse:.4g}{tail}"


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval that tolerates inf (no interpolation between samples)."""
    tail = (1 - level) / 2
    lo, hi = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return float(lo), float(hi)


def _solve(x: np.ndarray, y: np.ndarray, starts: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Best (log A', alpha, E) over ``starts``; x is already divided by its reference scale."""
    least_squares = _least_squares()
    lower = np.array([-np.inf, 0.0, 0.0])
    upper = np.array([np.inf, ALPHA_MAX, max(float(y.min()), 1e-12)])
    lx = np.log(x)

    def residuals(p):
        return np.exp(p[0] - p[1] * lx) + p[2] - y

    def jacobian(p):
        power = np.exp(p[0] - p[1] * lx)
        return np.stack([power, -lx * power, np.ones_like(lx)], axis=1)

    best, best_cost = None, np.inf
    for start in starts:
        p0 = np.clip(start, lower + 1e-9, upper - 1e-9)
        try:
            res = least_squares(residuals, p0, jac=jacobian, bounds=(lower, upper))
        except (ValueError, np.linalg.LinAlgError):
            continue
        if np.isfinite(res.cost) and res.cost < best_cost:
            best, best_cost = res.x, res.cost
    if best is None:
        raise UserError("the power-law fit failed from every starting point")
    return best, best_cost


def _starts(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """A small grid of (log A', alpha, E) starting points."""
    starts = []
    for alpha in (0.1, 0.3, 1.0, 3.0):
        for share in (0.0, 0.5, 0.9, 0.99):
            E = share * float(y.min())
            scale = np.mean((y - E) * np.power(x, alpha))
            starts.append(np.array([np.log(max(scale, 1e-12)), alpha, E]))
    return starts


def _to_law(p: np.ndarray, ref: float) -> PowerLaw:
    # A' / (x / ref)^alpha = (A' ref^alpha) / x^alpha
    return PowerLaw(float(np.exp(p[0] + p[1] * np.log(ref))), float(p[1]), float(p[2]))


def fit_power_law(x, y, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Fit:
    """Fit L(x) = A / x^alpha + E to points (x > 0), with bootstrap intervals."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise UserError(f"{len(x)} x values but {len(y)} losses")
    if len(np.unique(x)) < 3:
        raise UserError(
            f"a power law with an asymptote has 3 parameters; got {len(np.unique(x))} distinct "
            "x values, need at least 3"
        )
    if (x <= 0).any() or not np.isfinite(y).all():
        raise UserError("x must be positive and every loss finite")
    ref = float(np.exp(np.log(x).mean()))  # fit in units of the geometric mean: well scaled
    xs = x / ref
    p, cost = _solve(xs, y, _starts(xs, y))
    law = _to_law(p, ref)
    fitted = law(x)
    rmse = float(np.sqrt(np.mean((fitted - y) ** 2)))

    groups = [np.flatnonzero(x == v) for v in np.unique(x)]
    replicated = any(len(g) > 1 for g in groups)
    n_free = len(x) - len(PARAMS)
    if n_boot <= 0 or (not replicated and n_free <= 0):
        return Fit(law, x, y, rmse, None, level, "none")
    rng = np.random.default_rng(seed)
    resid = (y - fitted) * np.sqrt(len(x) / max(n_free, 1))
    boot = np.empty((n_boot, 3))
    for b in range(n_boot):
        if replicated:  # resample the seeds at each x, keep the design
            idx = np.concatenate([rng.choice(g, len(g)) for g in groups])
            xb, yb = xs[idx], y[idx]
        else:
            xb, yb = xs, fitted + rng.choice(resid, len(resid))
        pb, _ = _solve(xb, yb, [p])  # the full fit is a good start; the grid is the fallback
        if not np.isfinite(pb).all():
            pb, _ = _solve(xb, yb, _starts(xb, yb))
        law_b = _to_law(pb, ref)
        boot[b] = (law_b.A, law_b.alpha, law_b.E)
    method = "replicates" if replicated else "residuals"
    return Fit(law, x, y, rmse, boot, level, method)


@dataclass
class Multiplier:
    """How many more words the baseline needs to match a recipe, with a bootstrap interval."""

    value: float  # words_needed / recipe_words; inf when the recipe is below the asymptote
    ci: tuple[float, float] | None
    words_needed: float
    recipe_words: float
    recipe_loss: float
    baseline: Fit
    unbounded_share: float  # bootstrap share in which the recipe's loss is below E

    @property
    def unbounded(self) -> bool:
        return not np.isfinite(self.value)

    def describe(self) -> str:
        base = self.baseline
        span = ""
        if self.ci is not None:
            lo, hi = (f"{v:.3g}" if np.isfinite(v) else "inf" for v in self.ci)
            span = f" ({100 * base.level:.0f}% CI {lo} to {hi})"
        if self.unbounded:
            most = float(base.x.max()) / self.recipe_words
            return (
                f"multiplier > {most:.3g}x, unbounded{span}: the recipe's loss "
                f"{self.recipe_loss:.4f} is below the baseline's fitted asymptote "
                f"E = {base.law.E:.4f}, so no amount of baseline data reaches it "
                f"(largest baseline budget tried: {most:.3g}x the recipe's words)"
            )
        return (
            f"multiplier {self.value:.3g}x{span}: the baseline needs {self.words_needed:,.0f} "
            f"words to reach the recipe's loss {self.recipe_loss:.4f} at "
            f"{self.recipe_words:,.0f} words"
        )


def data_multiplier(
    baseline_words,
    baseline_losses,
    recipe_words: float,
    recipe_losses,
    *,
    baseline_fit: Fit | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Multiplier:
    """Effective data multiplier of a recipe (its losses at ``recipe_words``, e.g. one per seed)
    against a baseline measured at several budgets: fit the baseline's L(D), invert it at the
    recipe's mean loss, divide by the recipe's words. The interval combines the baseline's
    bootstrap refits with a resample of the recipe's seeds."""
    if baseline_fit is None:
        baseline_fit = fit_power_law(
            baseline_words, baseline_losses, n_boot=n_boot, level=level, seed=seed
        )
    losses = np.atleast_1d(np.asarray(recipe_losses, dtype=float))
    if recipe_words <= 0 or len(losses) == 0:
        raise UserError("the recipe needs positive words and at least one loss")
    loss = float(losses.mean())
    needed = baseline_fit.law.inverse(loss)
    ci, unbounded_share = None, 0.0
    if baseline_fit.boot is not None:
        rng = np.random.default_rng(seed + 1)
        ratios = np.empty(len(baseline_fit.boot))
        for b, (A, alpha, E) in enumerate(baseline_fit.boot):
            lb = float(rng.choice(losses, len(losses)).mean())
            ratios[b] = PowerLaw(A, alpha, E).inverse(lb) / recipe_words
        unbounded_share = float(np.mean(~np.isfinite(ratios)))
        ci = _interval(ratios, level)
    return Multiplier(
        needed / recipe_words, ci, needed, float(recipe_words), loss, baseline_fit, unbounded_share
    )


def plot_fits(
    series: list[tuple[str, Fit]], path, *, xlabel: str, ylabel: str = "validation loss"
) -> None:
    """Points, fitted curves and asymptotes (dashed) on a log-x axis, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, fit) in enumerate(series):
        color = f"C{i}"
        lo, hi = float(fit.x.min()), float(fit.x.max())
        grid = np.geomspace(lo, hi * 4, 200)
        ax.plot(fit.x, fit.y, "o", color=color)
        law = fit.law
        name = f"{label}: {law.A:.3g}/x^{law.alpha:.2f} + {law.E:.3f}"
        ax.plot(grid, law(grid), "-", color=color, label=name)
        ax.axhline(law.E, color=color, linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
