"""Small-scale reproduction of "Pre-training under infinite compute" (Kim et al. 2025; card:
papers/infinite_compute.md) on BabyLM text, with thrifty's sweep, ensemble, distillation and
scaling code, under a protocol a reviewer can check:

- **Choose on valid, report on test.** BabyLM's ``heldout`` files are prepared once and split
  in two halves by document: every choice (epochs, weight decay, the ensemble members' recipe)
  is made on the *valid* half's loss, and every reported loss is the *test* half's.
- **The baseline is tuned as hard as the method.** At every budget of the data ladder (D0, 2 D0,
  4 D0, 8 D0 words) the standard recipe's epochs are searched on a x2 grid until the best is
  bracketed: when the best tried count is at the top (or bottom) of what was tried, the next
  doubling (halving) is trained too, up to one compute cap for every budget (no run reads more
  than ``max_epochs`` x D0 words; a best at the cap is reported as not bracketed). The
  regularized recipes get the same search at D0.
- **Seeds.** Every point has ``seeds`` training seeds (default 2); choices use the mean over
  seeds, and the data multipliers' intervals resample both the baseline's seeds (bootstrap of
  the fit) and the recipe's.
- **The recipe against itself.** The standard recipe's own loss at each ladder budget, against a
  fit of the *other* budgets only, should give a multiplier near 1x: the check that the fit can
  be trusted on points it did not see.

With the data fixed at D0 words (a seeded sample of BabyLM's sample_600k) it measures:

  (i)   the standard recipe (weight decay 0.1) over epochs: the loss should be U-shaped;
  (ii)  larger weight decays over epochs: the U flattens and the best loss drops;
  (iii) logit-averaged ensembles of K = 1..k_max members of the best regularized recipe (two
        disjoint sets of seeds), with a fit A / K^alpha + E;
  (iv)  a student trained on a 1:1 mix of the real words and text sampled from the first
        K = k_max ensemble (the compute of one member): how much of the ensemble's gain it keeps;
  (v)   the effective data multiplier of each recipe against the tuned standard recipe's fit.

One shared tokenizer (trained on the D0 sample) makes per-token losses comparable across
budgets. Every run is a sweep run (`thrifty train` process; skipped when finished), and the
held-out evaluations are cached, so an interrupted benchmark resumes where it stopped.

    python benchmarks/infinite_compute.py --data DATA_DIR --out bench-runs/infinite_compute
    python benchmarks/infinite_compute.py --data DATA_DIR --scale smoke --out /tmp/ic-smoke

DATA_DIR holds babylm/{sample_600k,heldout}/ and blimp/. Prints a markdown table and writes
table.md, results.json and infinite_compute.png into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from thrifty.analysis.distill import build_mix, write_synthetic
from thrifty.analysis.ensemble import Ensemble, ensemble_blimp, ensemble_loss
from thrifty.analysis.runner import run_sweep
from thrifty.analysis.scaling import data_multiplier, fit_power_law
from thrifty.analysis.sweep import DataLadder, Sweep, prepare_ladder
from thrifty.data.prepare import prepare

SCALES = {
    # ~30M training tokens in all; about 45 min with --jobs 2 on two idle CPU cores
    "full": dict(
        d_model=128, n_layers=2, n_heads=4, vocab=2048, seq_len=128, batch=32, lr=3e-3,
        warmup=20, base_words=60_000, ladder=(2, 4, 8), epochs=(1, 2, 4, 8, 16),
        min_epochs=0.25, max_epochs=16, reg_wds=(0.8, 3.2), reg_epochs=(4, 8, 16), seeds=2,
        k_max=3, heldout_words=60_000, eval_windows=400, blimp_pairs=100, boot=1000,
    ),
    # the whole pipeline in a few minutes; the numbers mean nothing
    "smoke": dict(
        d_model=64, n_layers=2, n_heads=2, vocab=512, seq_len=64, batch=16, lr=1e-2,
        warmup=5, base_words=8_000, ladder=(2, 4, 8), epochs=(1, 2),
        min_epochs=0.5, max_epochs=4, reg_wds=(0.8,), reg_epochs=(2,), seeds=2,
        k_max=2, heldout_words=8_000, eval_windows=40, blimp_pairs=5, boot=100,
    ),
}  # fmt: skip
STANDARD_WD = 0.1
VALID, TEST = "valid", "train"  # the heldout set's two halves: prepare names them valid/train


def base_config(s: dict, out: Path) -> Path:
    """The recipe every run starts from (AdamW, cosine, clip 1.0, as in the paper)."""
    cfg = {
        "model": {"d_model": s["d_model"], "n_layers": s["n_layers"], "n_heads": s["n_heads"]},
        "data": {"seq_len": s["seq_len"]},
        "objective": {"name": "causal_lm"},
        "train": {
            "batch_size": s["batch"],
            "lr": s["lr"],
            "warmup_steps": s["warmup"],
            "schedule": "cosine",
            "max_epochs": 1,
            "eval_every": 0,
            "checkpoint_every": 400,  # an interrupted long run resumes from here
            "keep_last": 1,
            "peak_flops": 1e11,  # skip the start-up matmul timing; MFU is not studied here
        },
    }
    path = out / "base.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Bench:
    def __init__(self, args: argparse.Namespace, s: dict) -> None:
        self.args, self.s, self.out = args, s, args.out
        self.sweep_dir = args.out / "sweep"
        self.base = base_config(s, args.out)
        self.cache_path = args.out / "heldout_eval.json"
        self.cache = json.loads(self.cache_path.read_text()) if self.cache_path.is_file() else {}
        self.seeds = list(range(s["seeds"]))

    def budgets(self) -> list[int]:
        d0 = self.s["base_words"]
        return [d0] + [d0 * m for m in self.s["ladder"]]

    def data(self, budget: int) -> Path:
        return self.sweep_dir / "data" / f"budget_{budget}"

    def words(self, budget: int) -> int:
        """Training words actually prepared for a budget (the ladder's sample)."""
        return json.loads((self.data(budget) / "manifest.json").read_text())["words"]["train"]

    def prepare_data(self) -> None:
        sources = [self.args.data / "babylm" / "sample_600k"]
        ladder = DataLadder(sources, self.budgets(), vocab_size=self.s["vocab"])
        prepare_ladder(Sweep("data", None, self.sweep_dir, data=ladder))
        self.heldout = self.out / "heldout"
        if not (self.heldout / "manifest.json").is_file():
            prepare(
                [self.args.data / "babylm" / "heldout"],
                self.heldout,
                budget_words=self.s["heldout_words"],
                tokenizer_path=self.data(self.budgets()[0]) / "tokenizer.json",
                valid_fraction=0.5,  # valid: every choice; the other half: every reported loss
                progress=False,
            )

    def train(self, name: str, runs: list[dict]) -> dict[str, dict]:
        """Train ``runs`` as one sweep, longest first so that the jobs finish together."""
        sweep = Sweep(name, self.base, self.sweep_dir, runs=runs)
        built = sweep.build()
        words = {str(self.data(b)): b for b in self.budgets()}

        def cost(run) -> float:
            return run.cfg.train.max_epochs * words.get(run.cfg.data.path, 2 * self.budgets()[0])

        built.sort(key=cost, reverse=True)
        rows = run_sweep(sweep, built, jobs=self.args.jobs, threads=self.args.threads)
        failed = [n for n, r in rows.items() if r["status"] != "done"]
        if failed:
            raise SystemExit(f"runs failed: {failed}; see their logs in {self.sweep_dir}/logs")
        return rows

    def loss(self, runs: list[str], split: str) -> float:
        """Held-out loss of a run or the logit-averaged ensemble of runs on one half (cached)."""
        key = split + ":" + "+".join(Path(r).name for r in runs)
        if key not in self.cache:
            result = ensemble_loss(
                Ensemble(runs),
                self.heldout,
                split=split,
                seq_len=self.s["seq_len"],
                max_windows=self.s["eval_windows"],
            )
            self.cache[key] = result["loss"]
            self.cache_path.write_text(json.dumps(self.cache, indent=1))
        return self.cache[key]

    def blimp(self, runs: list[str]) -> float | None:
        folder = self.args.data / "blimp"
        if self.args.no_blimp or not folder.is_dir():
            return None
        key = "blimp:" + "+".join(Path(r).name for r in runs)
        if key not in self.cache:
            result = ensemble_blimp(
                Ensemble(runs), folder, max_pairs_per_paradigm=self.s["blimp_pairs"]
            )
            self.cache[key] = result["macro"]
            self.cache_path.write_text(json.dumps(self.cache, indent=1))
        return self.cache[key]


class Arm:
    """One recipe at one budget (weight decay, data) whose epochs are being searched: the runs
    of every tried epoch count and seed."""

    def __init__(self, budget: int, wd: float, grid) -> None:
        self.budget, self.wd = budget, wd
        self.epochs = sorted(float(e) for e in grid)
        self.runs: dict[tuple[float, int], str] = {}  # (epochs, seed) -> run folder

    def point(self, b: Bench, epochs: float, seed: int) -> dict:
        return {
            "data.path": str(b.data(self.budget)),
            "train.weight_decay": self.wd,
            "train.max_epochs": epochs,
            "train.seed": seed,
        }

    def valid(self, b: Bench, epochs: float) -> float:
        return float(np.mean([b.loss([self.runs[epochs, s]], VALID) for s in b.seeds]))

    def best(self, b: Bench) -> float:
        return min(self.epochs, key=lambda e: self.valid(b, e))

    def extend(self, b: Bench) -> bool:
        """Add the next doubling (halving) when the best is at the top (bottom) of the tried
        counts and the limits allow; True when something was added. The top limit is one
        compute cap for every budget: no run reads more than ``max_epochs`` x D0 words."""
        e, s = self.best(b), b.s
        most = s["max_epochs"] * b.budgets()[0] / self.budget
        if e == self.epochs[-1] and 2 * e <= most:
            self.epochs.append(2 * e)
            return True
        if e == self.epochs[0] and e / 2 >= s["min_epochs"]:
            self.epochs.insert(0, e / 2)
            return True
        return False

    def bracketed(self, b: Bench) -> bool:
        return self.epochs[0] < self.best(b) < self.epochs[-1]

    def chosen_runs(self, b: Bench) -> list[str]:
        e = self.best(b)
        return [self.runs[e, s] for s in b.seeds]


def search_epochs(b: Bench, arms: list[Arm]) -> None:
    """Train every arm's missing (epochs, seed) runs as one sweep per round, until each arm's
    best epoch count (mean valid loss over seeds) is bracketed or at a limit."""
    while True:
        todo = [(a, e, s) for a in arms for e in a.epochs for s in b.seeds if (e, s) not in a.runs]
        if todo:
            rows = b.train("search", [a.point(b, e, s) for a, e, s in todo])
            by_point = {
                json.dumps(r["overrides"], sort_keys=True): r["run_dir"] for r in rows.values()
            }
            for a, e, s in todo:
                a.runs[e, s] = by_point[json.dumps(a.point(b, e, s), sort_keys=True)]
        if not any([a.extend(b) for a in arms]):  # a list: every arm extends this round
            return


def run_search(b: Bench) -> tuple[dict[int, Arm], dict[float, Arm]]:
    """(i)-(ii): the standard recipe at every budget, the regularized ones at D0."""
    s, d0 = b.s, b.budgets()[0]
    standard = {}
    for budget in b.budgets():
        # larger budgets start at fewer epochs (optimal epochs fall as data grows); the search
        # moves the grid wherever the valid loss says
        top = max(s["epochs"][0], s["epochs"][-1] * d0 / budget)
        standard[budget] = Arm(budget, STANDARD_WD, [e for e in s["epochs"] if e <= top])
    regularized = {wd: Arm(d0, wd, s["reg_epochs"]) for wd in s["reg_wds"]}
    search_epochs(b, [*standard.values(), *regularized.values()])
    return standard, regularized


def run_members(b: Bench, reg: Arm) -> list[list[str]]:
    """(iii) two disjoint ensembles of k_max members of the chosen regularized recipe; the
    search's runs are their first seeds."""
    s, e = b.s, reg.best(b)
    seeds = range(2 * s["k_max"])
    todo = [k for k in seeds if (e, k) not in reg.runs]
    if todo:
        rows = b.train("members", [reg.point(b, e, k) for k in todo])
        for row in rows.values():
            reg.runs[e, row["overrides"]["train.seed"]] = row["run_dir"]
    members = [reg.runs[e, k] for k in seeds]
    return [members[: s["k_max"]], members[s["k_max"] :]]


def run_students(b: Bench, teacher: list[str], reg: Arm) -> list[str]:
    """(iv) D0 words sampled from the first ensemble; one student per seed on the 1:1 mix with
    the member recipe and the compute of one member (half the epochs over twice the words)."""
    d0 = b.data(b.budgets()[0])
    synth, mix = b.out / "synthetic", b.out / "mix"
    if not (synth / "synthetic.json").is_file():
        write_synthetic(teacher, synth, words=b.words(b.budgets()[0]), seed=0, batch=128)
    if not (mix / "manifest.json").is_file():
        build_mix(d0, synth, mix, ratio=1.0)
    runs = [
        {
            "data.path": str(mix),
            "train.weight_decay": reg.wd,
            "train.max_epochs": reg.best(b) / 2,
            "train.seed": seed,
        }
        for seed in b.seeds
    ]
    rows = b.train("student", runs)
    return [r["run_dir"] for r in sorted(rows.values(), key=lambda r: r["overrides"]["train.seed"])]


def ladder_points(b: Bench, standard: dict[int, Arm], skip: int | None = None):
    """(words, test loss) of the standard recipe's chosen runs, every seed a point."""
    x, y = [], []
    for budget, arm in standard.items():
        if budget != skip:
            for run in arm.chosen_runs(b):
                x.append(b.words(budget))
                y.append(b.loss([run], TEST))
    return np.array(x, dtype=float), np.array(y)


def multiplier_cell(m, most: float) -> str:
    if m.unbounded:
        return f"> {most:.2g}x (below the fitted asymptote)"
    lo, hi = m.ci if m.ci else (float("nan"), float("nan"))
    return f"{m.value:.2f}x ({lo:.2f}-{hi:.2f})"


def report(b: Bench, standard, regularized, ensembles, students) -> dict:
    s, d0 = b.s, b.budgets()[0]
    d0_words = b.words(d0)
    x, y = ladder_points(b, standard)
    base_fit = fit_power_law(x, y, n_boot=s["boot"])
    reg_wd = min(regularized, key=lambda wd: regularized[wd].valid(b, regularized[wd].best(b)))
    reg = regularized[reg_wd]

    def test(runs_per_seed: list[list[str]]) -> list[float]:
        return [b.loss(runs, TEST) for runs in runs_per_seed]

    ks = list(range(1, s["k_max"] + 1))
    ens_by_k = {k: test([e[:k] for e in ensembles]) for k in ks}
    k_fit = None
    if len(ks) >= 3:
        k_fit = fit_power_law(
            [k for k in ks for _ in ensembles], [v for k in ks for v in ens_by_k[k]],
            n_boot=s["boot"],
        )  # fmt: skip
    recipes = {f"standard (wd {STANDARD_WD:g}, {standard[d0].best(b):g} ep)": standard[d0]}
    recipes |= {f"wd {wd:g}, {a.best(b):g} ep": a for wd, a in regularized.items()}
    rows = []
    for name, arm in recipes.items():
        rows.append((name, [[r] for r in arm.chosen_runs(b)]))
    rows.append((f"ensemble K={s['k_max']} (wd {reg_wd:g} members)", ensembles))
    rows.append(("distilled student (1:1 real:ensemble text)", [[r] for r in students]))
    most = float(x.max()) / d0_words
    table = []
    for name, runs in rows:
        losses = test(runs)
        m = data_multiplier(x, None, d0_words, losses, baseline_fit=base_fit, seed=0)
        blimps = [b.blimp(r) for r in runs]
        blimp = None if None in blimps else float(np.mean(blimps))
        table.append({"recipe": name, "losses": losses, "multiplier": m, "blimp": blimp})
    # the standard recipe against a fit of the other budgets only
    self_check = []
    for budget in b.budgets():
        xo, yo = ladder_points(b, standard, skip=budget)
        fit = fit_power_law(xo, yo, n_boot=s["boot"])
        _, own = ladder_points(b, {budget: standard[budget]})
        m = data_multiplier(xo, None, b.words(budget), own, baseline_fit=fit, seed=0)
        inside = xo.min() < b.words(budget) < xo.max()
        self_check.append({"budget": budget, "multiplier": m, "interpolated": inside})
    member = float(np.mean(ens_by_k[1]))
    ens = float(np.mean(ens_by_k[ks[-1]]))
    student = float(np.mean(test([[r] for r in students])))
    return {
        "d0_words": d0_words, "base_fit": base_fit, "x": x, "y": y, "most": most,
        "reg_wd": reg_wd, "reg": reg, "ks": ks, "ens_by_k": ens_by_k, "k_fit": k_fit,
        "table": table, "self_check": self_check, "member": member, "ensemble": ens,
        "student": student,
        # the share of the ensemble's gain over one member that the student keeps (none to keep
        # when the ensemble is no better than a member)
        "kept": (member - student) / (member - ens) if ens < member else None,
    }  # fmt: skip


def epochs_markdown(b: Bench, title: str, arms: dict) -> list[str]:
    epochs = sorted({e for a in arms.values() for e in a.epochs})
    lines = [
        title,
        "",
        "| | " + " | ".join(f"{e:g} ep" for e in epochs) + " | chosen | bracketed |",
        "|---|" + "---:|" * len(epochs) + "---:|---|",
    ]
    for label, arm in arms.items():
        cells = [f"{arm.valid(b, e):.4f}" if e in arm.epochs else "" for e in epochs]
        best = arm.best(b)
        cells = [f"**{c}**" if e == best else c for c, e in zip(cells, epochs)]
        mark = "yes" if arm.bracketed(b) else "no (at a limit)"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {best:g} | {mark} |")
    return lines


def markdown(b: Bench, standard, regularized, r: dict, seconds: float) -> str:
    seeds = len(b.seeds)
    lines = epochs_markdown(
        b,
        f"### Valid loss vs epochs (mean of {seeds} seeds; bold: chosen)",
        {f"wd {STANDARD_WD:g}, {b.words(k):,} words": a for k, a in standard.items()}
        | {f"wd {wd:g}, {b.words(a.budget):,} words": a for wd, a in regularized.items()},
    )
    lines += [
        "",
        f"### Test loss at D0 = {r['d0_words']:,} words, and the data multiplier against the "
        "tuned standard recipe",
        "",
        "| recipe | test loss (per seed) | multiplier (95% CI) | BLiMP macro |",
        "|---|---:|---|---:|",
    ]
    for row in r["table"]:
        losses = row["losses"]
        loss = f"{np.mean(losses):.4f} ({', '.join(f'{v:.4f}' for v in losses)})"
        bl = f"{100 * row['blimp']:.1f}%" if row["blimp"] is not None else "-"
        lines.append(
            f"| {row['recipe']} | {loss} | {multiplier_cell(row['multiplier'], r['most'])} | {bl} |"
        )
    lines += [
        "",
        "### The standard recipe against itself (each budget against a fit of the others)",
        "",
        "| budget (words) | multiplier (95% CI) | |",
        "|---:|---|---|",
    ]
    for row in r["self_check"]:
        where = "interpolated" if row["interpolated"] else "extrapolated"
        cell = multiplier_cell(row["multiplier"], r["most"])
        lines.append(f"| {b.words(row['budget']):,} | {cell} | {where} |")
    by_k = ", ".join(f"K={k}: {np.mean(v):.4f}" for k, v in r["ens_by_k"].items())
    lines += [
        "",
        f"Ensembles (wd {r['reg_wd']:g}, {r['reg'].best(b):g}-epoch members; two disjoint seed "
        f"sets, mean): {by_k}",
    ]
    if r["k_fit"] is not None:
        lines.append(f"Fit over K: {r['k_fit'].summary()}")
    lines.append(f"Standard recipe over data (tuned epochs, test loss): {r['base_fit'].summary()}")
    kept = "no gain to keep" if r["kept"] is None else f"keeps {100 * r['kept']:.0f}% of its gain"
    lines.append(
        f"Distilled student {r['student']:.4f} vs one member {r['member']:.4f} and the teacher "
        f"ensemble {r['ensemble']:.4f}: {kept}"
    )
    lines.append(f"\nWall time: {seconds / 60:.1f} min (scale {b.args.scale}, {b.args.jobs} jobs)")
    return "\n".join(lines)


def findings(b: Bench, standard, regularized, r: dict) -> list[str]:
    """The five claims, each marked reproduced or not at this scale (valid losses, as chosen)."""

    def mark(ok: bool) -> str:
        return "reproduced" if ok else "NOT reproduced"

    def curve(arm: Arm) -> dict[float, float]:
        return {e: arm.valid(b, e) for e in arm.epochs}

    std = curve(standard[b.budgets()[0]])
    e_best, e_max = min(std, key=std.get), max(std)
    rise = std[e_max] - std[e_best]
    out = [
        f"(i) U-shape with wd {STANDARD_WD:g}: best at {e_best:g} epochs, +{rise:.4f} at "
        f"{e_max:g}: {mark(e_best < e_max and rise > 0.005)}"
    ]
    for wd, arm in regularized.items():
        reg = curve(arm)
        reg_rise = reg[max(reg)] - min(reg.values())
        lower = min(reg.values()) < min(std.values())
        flatter = reg_rise < rise or reg_rise <= 0.005
        out.append(
            f"(ii) wd {wd:g}: best valid {min(reg.values()):.4f} vs {min(std.values()):.4f}, "
            f"rise to {max(reg):g} ep {reg_rise:.4f} vs {rise:.4f}: {mark(lower and flatter)}"
        )
    ens = [float(np.mean(v)) for v in r["ens_by_k"].values()]
    single = min(float(np.mean(row["losses"])) for row in r["table"][: 1 + len(regularized)])
    falling = all(a > c for a, c in zip(ens, ens[1:])) and ens[-1] < single
    out.append(f"(iii) ensembles fall with K and beat the best single recipe: {mark(falling)}")
    if r["kept"] is None:
        out.append("(iv) the ensemble is no better than one member: nothing to distil")
    else:
        kept = r["kept"]
        out.append(f"(iv) the student keeps {100 * kept:.0f}% of the gain: {mark(kept > 0)}")
    for row in r["table"][1:]:
        out.append(f"(v) {row['recipe']}: {row['multiplier'].describe()}")
    return out


def plot(b: Bench, standard, regularized, r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    d0 = b.budgets()[0]
    arms = {f"wd {STANDARD_WD:g}": standard[d0]} | {f"wd {w:g}": a for w, a in regularized.items()}
    for label, arm in arms.items():
        axes[0].plot(arm.epochs, [arm.valid(b, e) for e in arm.epochs], "o-", label=label)
    axes[0].set(xscale="log", xlabel="epochs at D0", ylabel="valid loss", title="(i)-(ii) epochs")
    axes[0].legend()
    ks = r["ks"]
    axes[1].plot(ks, [np.mean(v) for v in r["ens_by_k"].values()], "o", color="C2")
    if r["k_fit"] is not None:
        grid = np.linspace(1, max(ks) * 2, 100)
        axes[1].plot(grid, r["k_fit"].law(grid), "-", color="C2")
    axes[1].axhline(r["student"], ls=":", color="C3", label="distilled student")
    axes[1].set(xlabel="ensemble size K", ylabel="test loss", title="(iii)-(iv) ensembles")
    axes[1].legend()
    fit = r["base_fit"]
    grid = np.geomspace(r["x"].min() / 2, r["x"].max() * 8, 200)
    axes[2].plot(r["x"], r["y"], "o", color="C0", label="standard, tuned epochs")
    axes[2].plot(grid, fit.law(grid), "-", color="C0")
    for i, row in enumerate(r["table"][1:], start=1):
        axes[2].axhline(np.mean(row["losses"]), ls=":", color=f"C{i}", label=row["recipe"])
    axes[2].set(xscale="log", xlabel="training words", title="(v) data multiplier")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_data = os.environ.get("THRIFTY_DATA", "../shared/data")
    ap.add_argument("--data", type=Path, default=Path(default_data), help="data root")
    ap.add_argument("--out", type=Path, default=Path("bench-runs/infinite_compute"))
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--jobs", type=int, default=2, help="training processes at once")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads per process (and for evaluation)"
    )
    ap.add_argument("--no-blimp", action="store_true", help="skip BLiMP scoring")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override a scale setting, e.g. base_words=100000 seeds=3",
    )
    args = ap.parse_args()
    s = dict(SCALES[args.scale])
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in s:
            raise SystemExit(f"unknown setting {key!r}; known: {', '.join(s)}")
        s[key] = yaml.safe_load(value)
    args.out.mkdir(parents=True, exist_ok=True)
    # evaluation and sampling run here, beside the training processes: with more threads than
    # free cores, OpenMP's barriers made small decoding matmuls ~50x slower
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    def stage(name: str, fn, *fn_args):
        t0 = time.perf_counter()
        result = fn(*fn_args)
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
        return result

    b = Bench(args, s)
    stage("data", b.prepare_data)
    standard, regularized = stage("epoch search at every budget", run_search, b)
    reg = min(regularized.values(), key=lambda a: a.valid(b, a.best(b)))
    ensembles = stage("ensemble members", run_members, b, reg)
    students = stage("distillation", run_students, b, ensembles[0], reg)
    r = stage("evaluation and fits", report, b, standard, regularized, ensembles, students)
    text = markdown(b, standard, regularized, r, time.perf_counter() - start)
    text += "\n\n" + "\n".join(f"- {f}" for f in findings(b, standard, regularized, r))
    print(text)
    (args.out / "table.md").write_text(text + "\n")
    plot(b, standard, regularized, r, args.out / "infinite_compute.png")
    results = {
        "settings": s,
        "valid_by_epochs": {
            f"budget={a.budget},wd={a.wd:g}": {f"{e:g}": a.valid(b, e) for e in a.epochs}
            for a in [*standard.values(), *regularized.values()]
        },
        "chosen_epochs": {f"budget={k}": a.best(b) for k, a in standard.items()}
        | {f"wd={wd:g}": a.best(b) for wd, a in regularized.items()},
        "ensemble_test_losses": {str(k): v for k, v in r["ens_by_k"].items()},
        "recipes": {
            row["recipe"]: {
                "test_losses": row["losses"],
                "multiplier": row["multiplier"].value,
                "ci": row["multiplier"].ci,
                "blimp": row["blimp"],
            }
            for row in r["table"]
        },
        "self_check": {
            str(row["budget"]): {"multiplier": row["multiplier"].value, "ci": row["multiplier"].ci}
            for row in r["self_check"]
        },
        "student_kept_share": r["kept"],
        "seconds": time.perf_counter() - start,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {args.out / 'table.md'}, results.json, infinite_compute.png")


if __name__ == "__main__":
    main()
