"""Small-scale reproduction of "Pre-training under infinite compute" (Kim et al. 2025; card:
papers/infinite_compute.md) on BabyLM text, with thrifty's sweep, ensemble, distillation and
scaling code.

With the data fixed at D0 words (default 250k, a seeded sample of BabyLM's sample_600k), it
measures on held-out text (BabyLM's heldout files, same tokenizer):

  (i)   the standard recipe (weight decay 0.1) over epochs: validation loss should be U-shaped;
  (ii)  a larger weight decay over epochs: the U flattens and the best loss drops;
  (iii) logit-averaged ensembles of K = 1..4 members (the best regularized recipe, seeds
        0..3), with a fit A / K^alpha + E;
  (iv)  a student trained on a 1:1 mix of the real words and text sampled from the K = 4
        ensemble (same compute as one member): how much of the ensemble's gain it keeps;
  (v)   the effective data multiplier of each recipe against the standard recipe, from a fit
        of the standard recipe's best loss at D0, 2 D0, 4 D0, 8 D0 words (bootstrap CI).

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
    # ~45M training tokens in all; about 40 min with --jobs 2 on two idle CPU cores
    "full": dict(
        d_model=128, n_layers=2, n_heads=4, vocab=4096, seq_len=128, batch=32, lr=3e-3,
        warmup=20, base_words=250_000, ladder=(2, 4, 8), epochs=(1, 2, 4, 8, 16),
        reg_wds=(0.8,), reg_epochs=(4, 8, 16), k_max=4, member_max_epochs=8,
        heldout_words=60_000, eval_windows=400, blimp_pairs=100, boot=1000,
    ),
    # the whole pipeline in a few minutes; the numbers mean nothing
    "smoke": dict(
        d_model=64, n_layers=2, n_heads=2, vocab=512, seq_len=64, batch=16, lr=1e-2,
        warmup=5, base_words=12_000, ladder=(2, 4, 8), epochs=(1, 2, 4),
        reg_wds=(0.8,), reg_epochs=(2, 4), k_max=3, member_max_epochs=2,
        heldout_words=8_000, eval_windows=40, blimp_pairs=5, boot=100,
    ),
}  # fmt: skip


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

    def budgets(self) -> list[int]:
        d0 = self.s["base_words"]
        return [d0] + [d0 * m for m in self.s["ladder"]]

    def data(self, budget: int) -> Path:
        return self.sweep_dir / "data" / f"budget_{budget}"

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
                valid_fraction=0.0,  # nobody trains on it: the whole sample is for evaluation
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

    def loss(self, runs: list[str]) -> float:
        """Held-out loss of a run or the logit-averaged ensemble of runs (cached)."""
        key = "+".join(Path(r).name for r in runs)
        if key not in self.cache:
            ens = Ensemble(runs)
            result = ensemble_loss(
                ens,
                self.heldout,
                split="train",
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


def run_stage1(b: Bench) -> dict:
    """(i) standard weight decay over epochs, (ii) larger weight decay over epochs, at D0."""
    s, data = b.s, str(b.data(b.budgets()[0]))
    runs = [{"train.weight_decay": 0.1, "train.max_epochs": e} for e in s["epochs"]]
    runs += [
        {"train.weight_decay": wd, "train.max_epochs": e}
        for wd in s["reg_wds"]
        for e in s["reg_epochs"]
    ]
    for r in runs:
        r["data.path"] = data
    rows = b.train("epochs", runs)
    table = {}
    for row in rows.values():
        o = row["overrides"]
        key = (o["train.weight_decay"], o["train.max_epochs"])
        table[key] = {"run": row["run_dir"], "loss": b.loss([row["run_dir"]])}
    return table


def best(table: dict, wds) -> tuple[tuple, dict]:
    return min(((k, v) for k, v in table.items() if k[0] in wds), key=lambda kv: kv[1]["loss"])


def run_stage2(b: Bench, table: dict) -> tuple[list[str], dict, dict]:
    """Ensemble members (the best regularized recipe, seeds 0..K-1) and the standard recipe's
    data ladder, trained together as one sweep."""
    s, d0 = b.s, b.budgets()[0]
    (_, e_std), _ = best(table, (0.1,))
    (wd_reg, e_reg), reg_best = best(table, s["reg_wds"])
    e_mem = min(e_reg, s["member_max_epochs"])
    member = {"data.path": str(b.data(d0)), "train.weight_decay": wd_reg}
    member["train.max_epochs"] = e_mem
    reuse = e_mem == e_reg  # seed 0 of the member recipe is the stage-1 run itself
    runs = [{**member, "train.seed": k} for k in range(1 if reuse else 0, s["k_max"])]
    for budget in b.budgets()[1:]:
        # the standard recipe's best epoch count at D0, kept at the same compute for larger
        # budgets but never below one epoch (optimal epochs fall as data grows)
        epochs = max(1.0, e_std * d0 / budget)
        runs.append(
            {
                "data.path": str(b.data(budget)),
                "train.weight_decay": 0.1,
                "train.max_epochs": epochs,
            }
        )
    rows = b.train("stage2", runs)
    seeded = sorted(
        (r["overrides"]["train.seed"], r["run_dir"])
        for r in rows.values()
        if "train.seed" in r["overrides"]
    )
    members = ([reg_best["run"]] if reuse else []) + [run for _, run in seeded]
    ladder = {d0: table[(0.1, e_std)]["loss"]}
    for r in rows.values():
        if "train.seed" not in r["overrides"]:
            budget = int(Path(r["overrides"]["data.path"]).name.split("_")[1])
            ladder[budget] = b.loss([r["run_dir"]])
    config = {"e_std": e_std, "wd_reg": wd_reg, "e_reg": e_reg, "e_member": e_mem}
    return members, dict(sorted(ladder.items())), config


def run_student(b: Bench, members: list[str], config: dict) -> str:
    """(iv) sample D0 words from the K-member ensemble; train one student on the 1:1 mix with
    the member recipe and the compute of one member (half the epochs over twice the words)."""
    d0 = b.data(b.budgets()[0])
    synth, mix = b.out / "synthetic", b.out / "mix"
    words = json.loads((d0 / "manifest.json").read_text())["words"]["train"]
    if not (synth / "synthetic.json").is_file():
        write_synthetic(members, synth, words=words, seed=0, batch=128)
    if not (mix / "manifest.json").is_file():
        build_mix(d0, synth, mix, ratio=1.0)
    student = {"data.path": str(mix), "train.weight_decay": config["wd_reg"]}
    student["train.max_epochs"] = config["e_member"] / 2
    rows = b.train("student", [student])
    return next(iter(rows.values()))["run_dir"]


def report(b: Bench, table: dict, members: list[str], ladder: dict, config: dict, student: str):
    s, d0 = b.s, b.budgets()[0]
    d0_words = json.loads((b.data(d0) / "manifest.json").read_text())["words"]["train"]
    ks = list(range(1, len(members) + 1))
    ens_losses = [b.loss(members[:k]) for k in ks]
    k_fit = fit_power_law(ks, ens_losses, n_boot=s["boot"]) if len(ks) >= 3 else None
    words = np.array(
        [json.loads((b.data(d) / "manifest.json").read_text())["words"]["train"] for d in ladder]
    )
    base_fit = fit_power_law(words, [ladder[d] for d in ladder], n_boot=s["boot"])
    (_, e_std), std_best = best(table, (0.1,))
    (_, _), reg_best = best(table, s["reg_wds"])
    student_loss = b.loss([student])
    recipes = {
        f"standard (wd 0.1, {e_std:g} ep)": (std_best["loss"], [std_best["run"]]),
        f"regularized (wd {config['wd_reg']:g}, {config['e_reg']:g} ep)": (
            reg_best["loss"],
            [reg_best["run"]],
        ),
        f"ensemble K={len(members)}": (ens_losses[-1], members),
        "distilled student": (student_loss, [student]),
    }
    rows = []
    for name, (loss, runs) in recipes.items():
        m = data_multiplier(words, None, d0_words, [loss], baseline_fit=base_fit, seed=0)
        blimp = b.blimp(runs)
        rows.append((name, loss, m, blimp))
    member_loss = ens_losses[0]
    kept = (member_loss - student_loss) / (member_loss - ens_losses[-1])
    return {
        "ks": ks,
        "ens_losses": ens_losses,
        "k_fit": k_fit,
        "base_fit": base_fit,
        "rows": rows,
        "kept": kept,
        "member_loss": member_loss,
        "student_loss": student_loss,
        "words": words,
        "d0_words": d0_words,
    }


def markdown(b: Bench, table: dict, r: dict, config: dict, seconds: float) -> str:
    epochs = sorted({k[1] for k in table})
    lines = [
        f"### Held-out loss vs epochs at D0 = {r['d0_words']:,} training words",
        "",
        "| weight decay | " + " | ".join(f"{e:g} ep" for e in epochs) + " |",
        "|---|" + "---:|" * len(epochs),
    ]
    for wd in sorted({k[0] for k in table}):
        cells = [f"{table[(wd, e)]['loss']:.4f}" if (wd, e) in table else "" for e in epochs]
        lines.append(f"| {wd:g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Recipes at D0, and the data multiplier against the standard recipe",
        "",
        "| recipe | held-out loss | multiplier (95% CI) | BLiMP macro |",
        "|---|---:|---|---:|",
    ]
    for name, loss, m, blimp in r["rows"]:
        if m.unbounded:
            mult = f"> {float(r['words'].max()) / r['d0_words']:.2g}x (below the asymptote)"
        else:
            lo, hi = m.ci if m.ci else (float("nan"), float("nan"))
            mult = f"{m.value:.2f}x ({lo:.2f}-{hi:.2f})"
        bl = f"{100 * blimp:.1f}%" if blimp is not None else "-"
        lines.append(f"| {name} | {loss:.4f} | {mult} | {bl} |")
    by_k = ", ".join(f"K={k}: {v:.4f}" for k, v in zip(r["ks"], r["ens_losses"]))
    lines += [
        "",
        f"Ensembles (members: wd {config['wd_reg']:g}, {config['e_member']:g} epochs, seeds "
        f"0..{len(r['ks']) - 1}): {by_k}",
    ]
    if r["k_fit"] is not None:
        lines.append(f"Fit over K: {r['k_fit'].summary()}")
    lines.append(f"Standard recipe over data: {r['base_fit'].summary()}")
    lines.append(
        f"Distilled student {r['student_loss']:.4f} vs one member {r['member_loss']:.4f} and "
        f"the teacher ensemble {r['ens_losses'][-1]:.4f}: keeps {100 * r['kept']:.0f}% of the "
        "ensemble's gain"
    )
    lines.append(f"\nWall time: {seconds / 60:.1f} min (scale {b.args.scale}, {b.args.jobs} jobs)")
    return "\n".join(lines)


def findings(table: dict, r: dict, config: dict) -> list[str]:
    """The five claims, each marked reproduced or not at this scale."""

    def mark(ok: bool) -> str:
        return "reproduced" if ok else "NOT reproduced"

    std = {e: v["loss"] for (wd, e), v in table.items() if wd == 0.1}
    e_best, e_max = min(std, key=std.get), max(std)
    u_shape = e_best < e_max and std[e_max] - std[e_best] > 0.005
    reg = {e: v["loss"] for (wd, e), v in table.items() if wd == config["wd_reg"]}
    reg_rise = reg[max(reg)] - min(reg.values())
    lower = min(reg.values()) < min(std.values())
    flatter = reg_rise < std[e_max] - std[e_best] or reg_rise <= 0.005
    ens = r["ens_losses"]
    falling = all(a > b for a, b in zip(ens, ens[1:])) and ens[-1] < min(reg.values())
    mult = next(m for name, _, m, _ in r["rows"] if name.startswith("regularized"))
    return [
        f"(i) U-shape with wd 0.1: best at {e_best:g} epochs, +{std[e_max] - std[e_best]:.4f} "
        f"at {e_max:g}: {mark(u_shape)}",
        f"(ii) wd {config['wd_reg']:g}: best {min(reg.values()):.4f} vs "
        f"{min(std.values()):.4f} with wd 0.1, rise {reg_rise:.4f}: {mark(lower and flatter)}",
        f"(iii) ensembles fall with K and beat the best single model: {mark(falling)}",
        f"(iv) the student keeps {100 * r['kept']:.0f}% of the ensemble gain: "
        f"{mark(r['kept'] > 0)}",
        f"(v) regularized recipe multiplier: {mult.describe()}",
    ]


def plot(table: dict, r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for wd in sorted({k[0] for k in table}):
        pts = sorted((e, v["loss"]) for (w, e), v in table.items() if w == wd)
        axes[0].plot(*zip(*pts), "o-", label=f"wd {wd:g}")
    epochs = sorted({k[1] for k in table})
    axes[0].set(xscale="log", xlabel="epochs", ylabel="held-out loss", title="(i)-(ii) epochs")
    axes[0].set_xticks(epochs, [f"{e:g}" for e in epochs])
    axes[0].minorticks_off()
    axes[0].legend()
    axes[1].plot(r["ks"], r["ens_losses"], "o", color="C2")
    if r["k_fit"] is not None:
        grid = np.linspace(1, max(r["ks"]) * 2, 100)
        axes[1].plot(grid, r["k_fit"].law(grid), "-", color="C2")
    shown = [*r["ens_losses"], r["student_loss"]]
    low, high = min(shown), max(shown)
    if r["k_fit"] is not None and r["k_fit"].law.E > low - (high - low):
        axes[1].axhline(r["k_fit"].law.E, ls="--", color="C2", lw=0.8, label="fitted E")
    axes[1].axhline(r["student_loss"], ls=":", color="C3", label="distilled student")
    axes[1].set_ylim(low - 0.2 * (high - low) - 0.01, high + 0.2 * (high - low) + 0.01)
    axes[1].set(xlabel="ensemble size K", title="(iii)-(iv) ensembles")
    axes[1].legend()
    fit, words = r["base_fit"], r["words"]
    grid = np.geomspace(words.min() / 2, words.max() * 8, 200)
    axes[2].plot(words, fit.y, "o", color="C0", label="standard recipe")
    axes[2].plot(grid, fit.law(grid), "-", color="C0")
    for i, (name, loss, _, _) in enumerate(r["rows"][1:], start=1):
        axes[2].axhline(loss, ls=":", color=f"C{i}", label=name)
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
        help="override a scale setting, e.g. base_words=500000 epochs=[1,2,4,8]",
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
    table = stage("stage 1: epochs x weight decay", run_stage1, b)
    members, ladder, config = stage("stage 2: members and data ladder", run_stage2, b, table)
    student = stage("stage 3: distillation", run_student, b, members, config)
    r = stage("evaluation and fits", report, b, table, members, ladder, config, student)
    text = markdown(b, table, r, config, time.perf_counter() - start)
    text += "\n\n" + "\n".join(f"- {f}" for f in findings(table, r, config))
    print(text)
    (args.out / "table.md").write_text(text + "\n")
    plot(table, r, args.out / "infinite_compute.png")
    results = {
        "settings": s,
        "config": config,
        "epochs_table": {f"wd={k[0]:g},epochs={k[1]:g}": v for k, v in table.items()},
        "ensemble_losses": dict(zip(map(str, r["ks"]), r["ens_losses"])),
        "ladder": {str(k): v for k, v in ladder.items()},
        "recipes": {
            n: {"loss": loss, "multiplier": m.value, "ci": m.ci, "blimp": bl}
            for n, loss, m, bl in r["rows"]
        },
        "student_kept_share": r["kept"],
        "seconds": time.perf_counter() - start,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {args.out / 'table.md'}, results.json, infinite_compute.png")


if __name__ == "__main__":
    main()
