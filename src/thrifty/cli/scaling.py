"""``thrifty scaling RUNS… --x params|k|words``: fit L(x) = A / x^α + E with bootstrap
confidence intervals and plot it; with ``--recipe RUNS…`` (and ``--x words``) also the
effective data multiplier of that recipe against RUNS as the baseline (Kim et al. 2025)."""

from __future__ import annotations

import argparse

LABELS = {"params": "parameters", "k": "ensemble size K", "words": "training words"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scaling", help="power-law fits with an asymptote; the data multiplier", description=__doc__
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="run folders, sweep folders (their finished runs), or thrifty ensemble --out files",
    )
    p.add_argument("--x", required=True, choices=("params", "k", "words"), help="the knob")
    p.add_argument(
        "--metric", default="val_loss", help="the runs' final metric to fit (default val_loss)"
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="instead, score every run on this prepared dataset (same tokenizer as the runs): "
        "one held-out set for all points, as a data ladder needs",
    )
    p.add_argument("--split", default="valid", help="split of --data to score (valid or train)")
    p.add_argument("--max-windows", type=int, help="score only the first N windows of --data")
    p.add_argument(
        "--recipe",
        nargs="+",
        metavar="PATH",
        help="runs of a recipe: its data multiplier against PATHs (needs --x words)",
    )
    p.add_argument("--plot", metavar="PNG", help="write a plot of points and fits")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap refits")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from thrifty.analysis.results import collect_points
    from thrifty.analysis.scaling import data_multiplier, fit_power_law, plot_fits
    from thrifty.errors import UserError

    if args.recipe and args.x != "words":
        raise UserError("--recipe gives a data multiplier, which needs --x words")
    evaluate = None
    if args.data:
        from thrifty.analysis.ensemble import Ensemble, ensemble_loss

        def evaluate(run) -> float:
            result = ensemble_loss(
                Ensemble([run]), args.data, split=args.split, max_windows=args.max_windows
            )
            return result["loss"]

    points = collect_points(args.paths, args.x, args.metric, evaluate)
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    for x, y, source in sorted(points):
        print(f"  {args.x}={x:,.0f}  {args.metric}={y:.4f}  {source}")
    fit = fit_power_law(xs, ys, n_boot=args.bootstrap, level=args.level, seed=args.seed)
    print(fit.summary())
    series = [("baseline" if args.recipe else args.metric, fit)]
    if args.recipe:
        recipe = collect_points(args.recipe, "words", args.metric, evaluate)
        for words in sorted({p[0] for p in recipe}):
            losses = [p[1] for p in recipe if p[0] == words]
            m = data_multiplier(
                xs, ys, words, losses, baseline_fit=fit, level=args.level, seed=args.seed
            )
            print(f"recipe at {words:,.0f} words ({len(losses)} run(s)): {m.describe()}")
        if len({p[0] for p in recipe}) >= 3:
            rx, ry = np.array([p[0] for p in recipe]), np.array([p[1] for p in recipe])
            series.append(("recipe", fit_power_law(rx, ry, n_boot=0)))
    if args.plot:
        plot_fits(series, args.plot, xlabel=LABELS[args.x], ylabel=args.metric)
        print(f"wrote {args.plot}")
    return 0
