"""FBNetV3's predictor-guided search (``papers/fbnetv3.md``'s small-scale check) on BabyLM text
or on scikit-learn's handwritten digits, the card's own setting.

- ``--task text``: layers {1, 2, 3, 4} × width {32, 64, 96, 128} × lr log-uniform [3e-4, 3e-2]
  × weight decay log-uniform [0.01, 0.5] × epochs {1, 2}, causal LM on ``--words`` BabyLM
  words (``sample_300k``); test: the loss on BabyLM's held-out text.
- ``--task digits``: a ViT classifier (``configs/classify-digits.yaml``, 2×2 patches) with
  layers {1, 2, 3, 4} × width {16, 32, 48, 64} × the same lr and weight decay × epochs
  {5, 10, 20}; test: the run's own head's accuracy on the digits' test split.

Validation loss is the metric in both. Three measurements:

1. **Predictor ranking.** ``--pool`` Sobol candidates are trained once. For n in (10, 20, 30)
   measured candidates (``--resamples`` random subsets of the pool), a predictor is fitted with
   and without pretraining on the parameters and FLOPs of 2,000 untrained candidates; Kendall's
   τ between its predictions and the true validation loss of the pool's other candidates.
2. **Search vs random at equal measured runs.** `thrifty sweep --nars` (10 Sobol + 2 rounds
   × 5) against the best of the first 20 Sobol candidates, per search seed.
3. **Test score** of each winner on data never used for any choice.

    python benchmarks/nars_check.py --task text --out bench-runs/nars --data-root $THRIFTY_DATA
    python benchmarks/nars_check.py --task digits --out bench-runs/nars-digits --jobs 2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

CONFIGS = Path(__file__).parents[1] / "configs"
RECIPE = {
    "train.lr": {"log_uniform": [3.0e-4, 3.0e-2]},
    "train.weight_decay": {"log_uniform": [0.01, 0.5]},
}
SPACES = {
    "text": {"model.n_layers": [1, 2, 3, 4], "model.d_model": [32, 64, 96, 128], **RECIPE,
             "train.max_epochs": [1, 2]},
    "digits": {"model.n_layers": [1, 2, 3, 4], "model.d_model": [16, 32, 48, 64], **RECIPE,
               "train.max_epochs": [5, 10, 20]},
}  # fmt: skip


def prepare_text(args) -> tuple[Path, dict, Path]:
    """BabyLM words for training and validation, held-out text for the test; the base config
    and its overrides."""
    from thrifty.data.prepare import prepare

    data, heldout = args.out / "data", args.out / "heldout"
    if not (data / "manifest.json").exists():
        prepare([str(args.data_root / "babylm" / "sample_300k")], data, budget_words=args.words,
                vocab_size=2048, valid_fraction=0.05, progress=False)  # fmt: skip
    if not (heldout / "manifest.json").exists():
        prepare([str(args.data_root / "babylm" / "heldout")], heldout, budget_words=50_000,
                tokenizer_path=data / "tokenizer.json", valid_fraction=0.01,
                progress=False)  # fmt: skip
    overrides = {
        "data.path": str(data), "data.seq_len": 64, "model.max_seq_len": 64,
        "model.n_heads": 2, "train.batch_size": 16, "train.max_steps": None,
        "train.warmup_steps": 20, "train.eval_every": 0, "train.eval_batches": 20,
        "train.log_every": 50, "train.checkpoint_every": 0, "train.peak_flops": 1e11,
    }  # fmt: skip
    return CONFIGS / "nano.yaml", overrides, heldout


def prepare_digits(args) -> tuple[Path, dict, Path]:
    """The digits, split 70 / 10 / 20 into train, valid and test by class."""
    from thrifty.data.images import prepare_images

    data = args.out / "data"
    if not (data / "manifest.json").exists():
        prepare_images("digits", data)
    overrides = {
        "data.path": str(data), "model.n_heads": 2, "train.max_steps": None,
        "train.eval_every": 0, "train.log_every": 1000, "train.peak_flops": 1e11,
    }  # fmt: skip
    return CONFIGS / "classify-digits.yaml", overrides, data


def test_score(task: str, run: Path, test_data: Path) -> float:
    """Text: token loss on the held-out text; digits: accuracy on the test split."""
    from thrifty.runs import load_model

    loaded = load_model(run)
    if task == "digits":
        from thrifty.eval.image_classify import head_accuracy

        return head_accuracy(loaded, test_data, "test")
    from thrifty.analysis.ensemble import token_nll
    from thrifty.data.tokens import TokenStore

    return token_nll(loaded.model, TokenStore(test_data, "train"), 64, max_windows=400)["loss"]


def main() -> None:
    from thrifty.analysis.nars_search import Nars, nars_sweep, parse_nars
    from thrifty.analysis.nars_space import encode, sobol_candidates
    from thrifty.analysis.predictor import MetricPredictor, kendall_tau
    from thrifty.analysis.runner import run_sweep
    from thrifty.analysis.sweep import load_sweep

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(SPACES), default="text")
    p.add_argument("--out", type=Path, default=Path("bench-runs/nars"))
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("THRIFTY_DATA", ".")))
    p.add_argument("--words", type=int, default=100_000, help="text: BabyLM words to train on")
    p.add_argument("--pool", type=int, default=40)
    p.add_argument("--resamples", type=int, default=20)
    p.add_argument("--search-seeds", type=int, default=2)
    p.add_argument("--jobs", type=int, default=1, help="runs at once (one thread each)")
    args = p.parse_args()
    started = time.perf_counter()
    base, overrides, test_data = (prepare_text if args.task == "text" else prepare_digits)(args)
    sweep_file = args.out / "sweep.yaml"
    nars = {"space": SPACES[args.task], "initial": 10, "rounds": 2, "per_round": 5,
            "proxies": 2000}  # fmt: skip
    sweep_file.parent.mkdir(parents=True, exist_ok=True)
    sweep_file.write_text(yaml.safe_dump({"name": "nars", "base": str(base),
                                          "overrides": overrides, "nars": nars}))  # fmt: skip
    sweep = load_sweep(sweep_file, args.out / "sweep")

    def execute(sweep, runs, **kwargs):
        return run_sweep(
            sweep, runs, jobs=args.jobs, threads=1, retry_failed=True, stream=sys.stderr
        )

    searcher = Nars(sweep, parse_nars(sweep.nars), lambda s, r: execute(s, r), sys.stderr)
    axes = searcher.spec.axes
    pool = sobol_candidates(axes, args.pool, 100, searcher.valid)
    rows = execute(sweep, sweep.build(pool))
    losses = np.array([rows[r.name]["metrics"]["val_loss"] for r in sweep.build(pool)])
    x = np.array([encode(axes, c) for c in pool])
    pretrained = searcher.predictor()  # pretrained on the proxies of 2,000 candidates
    rng = np.random.default_rng(0)
    taus: dict[str, dict[int, list[float]]] = {"pretrained": {}, "scratch": {}}
    for n in (10, 20, 30):
        for _ in range(args.resamples):
            order = rng.permutation(len(pool))
            seen, rest = order[:n], order[n:]
            for arm in taus:
                predictor = copy.deepcopy(pretrained) if arm == "pretrained" else (
                    MetricPredictor(x.shape[1], seed=0))  # fmt: skip
                predictor.fit(x[seen], losses[seen])
                taus[arm].setdefault(n, []).append(
                    kendall_tau(predictor.predict(x[rest]), losses[rest])
                )
    searches = []
    for seed in range(args.search_seeds):
        sweep.nars = {**nars, "seed": seed}
        found = nars_sweep(sweep, execute=execute)
        randoms = sobol_candidates(axes, 20, seed, searcher.valid)
        random_rows = execute(sweep, sweep.build(randoms))
        random_runs = sweep.build(randoms)
        random_best = min(random_runs, key=lambda r: random_rows[r.name]["metrics"]["val_loss"])
        nars_run = sweep.build([found.best])[0]
        searches.append({
            "seed": seed, "nars_val": found.metric, "nars": found.best,
            "nars_test": test_score(args.task, nars_run.run_dir, test_data),
            "random_val": random_rows[random_best.name]["metrics"]["val_loss"],
            "random": random_best.overrides,
            "random_test": test_score(args.task, random_best.run_dir, test_data),
        })  # fmt: skip
    measured = [{"candidate": c, "val_loss": float(v)} for c, v in zip(pool, losses)]
    result = {"task": args.task, "pool": measured, "taus": taus, "searches": searches}
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(report(result, time.perf_counter() - started))


def report(result: dict, seconds: float) -> str:
    lines = ["Kendall τ of predicted vs true validation loss on the pool's unmeasured candidates",
             "(mean ± std over resamples)", "",
             "| measured | pretrained predictor | from scratch |", "|---|---|---|"]  # fmt: skip
    for n in (10, 20, 30):
        cells = [f"{np.mean(result['taus'][a][n]):.2f} ± {np.std(result['taus'][a][n]):.2f}"
                 for a in ("pretrained", "scratch")]  # fmt: skip
        lines.append(f"| {n} | {cells[0]} | {cells[1]} |")
    test = "test accuracy" if result["task"] == "digits" else "test loss"
    lines += ["", f"| search seed | NARS val loss / {test} | random val loss / {test} |",
              "|---|---|---|"]  # fmt: skip
    for s in result["searches"]:
        lines.append(f"| {s['seed']} | {s['nars_val']:.3f} / {s['nars_test']:.3f} | "
                     f"{s['random_val']:.3f} / {s['random_test']:.3f} |")  # fmt: skip
    best = min(result["pool"], key=lambda r: r["val_loss"])
    lines += ["", f"best of the pool: {best['candidate']} -> {best['val_loss']:.3f}",
              f"({seconds / 60:.1f} min in all)"]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
