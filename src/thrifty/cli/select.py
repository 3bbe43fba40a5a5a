"""``thrifty select POOL --target TEXT --tau 4 --budget-words N --out DIR``: CoLoR-Filter.

Trains a prior LM on a random sample of the pool (or takes ``--prior RUN``), fine-tunes a copy on
the target text for one epoch (the card's defaults: lr 1e-3, 20 warm-up steps, fresh optimizer),
scores τ·N candidate pool words with both, keeps the N words whose loss drops most, and writes
them as a prepared dataset whose ledger charges both auxiliary models (`thrifty.data.color_filter`
has the rule and the accounting). Scores (``scores.tsv``) and the domain composition
(``selection.json``) are saved in the dataset folder. The auxiliary runs and data stay in
``--work`` (default ``OUT.work``) and are reused when the command is run again.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.atomic import write_text_atomic
from thrifty.cli.numbers import parse_count
from thrifty.errors import UserError

log = logging.getLogger("thrifty.select")

# Auxiliary models after the card's small-scale check: 2 layers, width 128, windows of 128.
AUX_RECIPE = [
    "model.size=nano",
    "model.d_model=128",
    "model.n_layers=2",
    "model.n_heads=4",
    "model.max_seq_len=256",
    "data.seq_len=128",
    "objective.name=causal_lm",
    "train.batch_size=32",
    "train.lr=3e-3",
    "train.warmup_steps=50",
    "train.max_epochs=1",
    "train.eval_every=0",
    "train.eval_batches=4",
    "train.checkpoint_every=0",
    "train.log_every=50",
]
# The conditional model: the card's fine-tuning (finetune-books.yaml), one epoch of the target.
FINETUNE = ["train.lr=1e-3", "train.warmup_steps=20", "train.max_epochs=1", "train.max_steps=null"]
AUX_VALID_FRACTION = 0.02  # a sliver of each auxiliary data set, so its run reports val loss


def _count(text: str) -> int:
    try:
        return parse_count(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "select",
        help="CoLoR-Filter: select pool text for a target domain, charging its aux models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pool", nargs="+", metavar="POOL", help="pool sources (as for prepare)")
    p.add_argument("--target", nargs="+", required=True, metavar="TEXT", help="target text")
    p.add_argument("--tau", type=float, default=4.0, help="selection ratio: score tau·N words")
    p.add_argument("--budget-words", type=_count, required=True, metavar="N", help="words kept")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset to write")
    p.add_argument("--prior", metavar="RUN", help="take this prior instead of training one")
    p.add_argument("--prior-words", type=_count, metavar="N", help="prior's sample (default N)")
    p.add_argument("--target-words", type=_count, metavar="N", help="sample of the target")
    p.add_argument("--method", choices=("color", "conditional"), default="color")
    p.add_argument("--chunk-words", type=_count, default=100, help="words per candidate chunk")
    p.add_argument("--config", type=Path, help="recipe of the auxiliary models (YAML)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides")
    p.add_argument("--work", type=Path, help="auxiliary runs and data (default OUT.work)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab-size", type=_count, default=8192)
    p.add_argument("--valid-fraction", type=float, default=0.01)
    p.add_argument("--tokenizer", type=Path, help="use this tokenizer.json for everything")
    p.add_argument("--new-tokenizer", action="store_true", help="train one on the selection")
    p.add_argument("--max-charged-words", type=_count, help="budget of the whole selection")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    summary = color_filter_select(
        args.pool,
        args.target,
        args.out,
        tau=args.tau,
        budget_words=args.budget_words,
        prior=args.prior,
        prior_words=args.prior_words,
        target_words=args.target_words,
        method=args.method,
        chunk_words=args.chunk_words,
        config=args.config,
        overrides=args.set,
        work=args.work,
        seed=args.seed,
        vocab_size=args.vocab_size,
        valid_fraction=args.valid_fraction,
        tokenizer=args.tokenizer,
        new_tokenizer=args.new_tokenizer,
        max_charged_words=args.max_charged_words,
        device=args.device,
        threads=args.threads,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    if not args.quiet:
        print(json.dumps(summary, indent=1))
    return 0


def _check_work(work: Path, request: dict[str, Any]) -> None:
    """The work folder caches auxiliary runs; refuse to mix runs made for another request."""
    work.mkdir(parents=True, exist_ok=True)
    record = work / "request.json"
    if record.is_file() and json.loads(record.read_text()) != request:
        raise UserError(
            f"{work} holds auxiliary runs of another selection; delete it or pass --work"
        )
    write_text_atomic(record, json.dumps(request, indent=1))


def color_filter_select(
    pool: list[str],
    target: list[str],
    out: Path,
    *,
    tau: float,
    budget_words: int,
    prior: str | None = None,
    prior_words: int | None = None,
    target_words: int | None = None,
    method: str = "color",
    chunk_words: int = 100,
    config: Path | None = None,
    overrides: list[str] = (),
    work: Path | None = None,
    seed: int = 0,
    vocab_size: int = 8192,
    valid_fraction: float = 0.01,
    tokenizer: Path | None = None,
    new_tokenizer: bool = False,
    max_charged_words: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """The whole CoLoR-Filter pipeline; returns a summary (also in OUT/selection.json).

    ``tokenizer``: a tokenizer.json (or prepared dataset) for the prior's data, the target and
    the selection, e.g. to compare several selections with one vocabulary; by default the
    prior's data trains one. ``new_tokenizer``: train a fresh one on the selection instead.
    """
    import torch

    from thrifty.data import color_filter as cf
    from thrifty.data.prepare import MANIFEST_FILE, scan_sources, write_selection

    start = time.perf_counter()
    out = Path(out)
    if (out / MANIFEST_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a prepared dataset is already here; pass --overwrite")
    if tau < 1 or budget_words < 1:
        raise UserError(f"--tau must be >= 1 and --budget-words positive ({tau}, {budget_words})")
    if threads:
        torch.set_num_threads(threads)
    work = Path(work) if work else out.with_name(out.name + ".work")
    request = {"pool": [str(p) for p in pool], "target": [str(t) for t in target], "tau": tau}
    request |= {"budget_words": budget_words, "prior": prior, "prior_words": prior_words}
    request |= {"target_words": target_words, "chunk_words": chunk_words, "seed": seed}
    request |= {"config": str(config) if config else None, "overrides": list(overrides)}
    request |= {"tokenizer": str(tokenizer) if tokenizer else None}
    _check_work(work, request)
    tokenizer = Path(tokenizer) if tokenizer else None
    aux = _Aux(work, config, list(overrides), seed, device, threads, progress, tokenizer)

    # 1. candidates: tau·N words of the pool, each source its proportional share
    scans = scan_sources(pool, max_doc_words=chunk_words, progress=progress)
    n_candidates = round(tau * budget_words)
    available = sum(s.words for s in scans)
    if n_candidates > available:
        raise UserError(
            f"--tau {tau:g} x --budget-words {budget_words:,} needs {n_candidates:,} candidate "
            f"words; the pool holds {available:,}"
        )
    candidates = cf.sample_candidates(scans, n_candidates, seed)

    # 2. the prior (trained on a random sample of the candidates, or given), 3. the conditional
    n_target = target_words or sum(s.words for s in scan_sources(target))
    if prior is not None:
        if tokenizer is not None:
            raise UserError("--tokenizer and --prior: the prior's own tokenizer is used")
        prior_run, tokenizer, prior_words = aux.given_prior(prior)
    charged = n_candidates + n_target + (0 if prior is None else prior_words)
    if max_charged_words is not None and charged > max_charged_words:
        raise UserError(
            f"this selection charges {charged:,} words (candidates + target + prior), more than "
            f"--max-charged-words {max_charged_words:,}; lower --tau or --budget-words"
        )
    if prior is None:
        prior_words = min(prior_words or budget_words, n_candidates)
        prior_run, tokenizer = aux.prior(scans, candidates, prior_words, vocab_size, chunk_words)
    n_target, target_sources = aux.target_data(target, target_words, tokenizer)
    cond_run = aux.conditional(prior_run)

    # 4. score every candidate under both models, keep the best N words
    t_score = time.perf_counter()
    prior_nll, cond_nll = aux.score(prior_run, cond_run, tokenizer, scans, candidates, chunk_words)
    t_score = time.perf_counter() - t_score
    scores = cf.selection_scores(prior_nll, cond_nll, method)
    kept = cf.top_words(np.concatenate([w[w > 0] for w in candidates]), scores, budget_words)
    selected = cf.unflatten(kept, candidates)

    # 5. the prepared dataset with its ledger, the scores and the composition
    ledger = cf.selection_ledger(
        method=method,
        tau=tau,
        seed=seed,
        candidate_words=n_candidates,
        selected_words=budget_words,
        prior_words=prior_words,
        prior_from_pool=prior is None,
        target_words=n_target,
        target_sources=target_sources,
        budget_words=max_charged_words,
    )
    write_selection(
        scans,
        selected,
        out,
        ledger=ledger,
        seed=seed,
        vocab_size=vocab_size,
        valid_fraction=valid_fraction,
        max_doc_words=chunk_words,
        tokenizer_path=None if new_tokenizer else tokenizer,
        overwrite=overwrite,
        progress=progress,
    )
    cf.write_scores(out / "scores.tsv", scans, candidates, prior_nll, cond_nll, scores, kept)
    summary = {
        "out": str(out),
        "method": method,
        "tau": tau,
        "candidate_words": n_candidates,
        "selected_words": budget_words,
        "target_words": n_target,
        "charged_words": ledger.charged_words(),
        "prior_run": str(prior_run),
        "conditional_run": str(cond_run),
        "mean_score_selected": float(scores[kept > 0].mean()),
        "mean_score_candidates": float(scores.mean()),
        "scoring_seconds": t_score,
        "seconds": time.perf_counter() - start,
        "composition": cf.composition(scans, candidates, selected),
    }
    write_text_atomic(out / "selection.json", json.dumps(summary, indent=1) + "\n")
    return summary


class _Aux:
    """The auxiliary runs and data of one selection, kept (and reused) in the work folder."""

    def __init__(self, work, config, overrides, seed, device, threads, progress, tokenizer):
        self.work, self.config, self.progress, self.seed = work, config, progress, seed
        runtime = [f"train.seed={seed}", f"train.device={device}", f"runs_dir={work}"]
        self.extra = [*overrides, *runtime, *([f"train.threads={threads}"] if threads else [])]
        self.device, self.tokenizer = device, tokenizer

    def train(self, recipe: list[str]) -> Path:
        """Train (or finish, or reuse) an auxiliary run; its folder."""
        from thrifty.config import load_config
        from thrifty.train.loop import train

        cfg = load_config(self.config, [*([] if self.config else AUX_RECIPE), *recipe])
        train(cfg, resume="auto")
        return cfg.run_dir

    def prior(self, scans, candidates, words: int, vocab_size: int, chunk_words: int):
        """Train the prior on ``words`` random candidate words; (run, its tokenizer file)."""
        from thrifty.data.budget import Ledger, select_sample
        from thrifty.data.prepare import MANIFEST_FILE, write_selection

        data = self.work / "prior-data"
        if not (data / MANIFEST_FILE).is_file():
            write_selection(
                scans,
                select_sample(candidates, words, self.seed + 1),
                data,
                ledger=Ledger(selection="sample", seed=self.seed),
                seed=self.seed,
                vocab_size=vocab_size,
                valid_fraction=AUX_VALID_FRACTION,
                max_doc_words=chunk_words,
                tokenizer_path=self.tokenizer,
                progress=self.progress,
            )
        run = self.train([f"data.path={data}", "name=prior", *self.extra])
        # the prior data's tokenizer file: its manifest records the words it was trained on
        return run, self.tokenizer or data / "tokenizer.json"

    def given_prior(self, path: str):
        """(run, tokenizer file, words charged by its ledger) of a prior trained elsewhere."""
        from thrifty.data.budget import Ledger
        from thrifty.runs import load_model

        loaded = load_model(path)
        words = Ledger.from_dict(loaded.ledger()).charged_words() if loaded.ledger() else 0
        return loaded.run_dir, loaded.run_dir / "tokenizer.json", words

    def target_data(self, target, words: int | None, tokenizer: Path):
        """Prepare the target with the prior's tokenizer; (its words, its ledger sources)."""
        from thrifty.data.prepare import MANIFEST_FILE, load_manifest, prepare

        data = self.work / "target-data"
        if not (data / MANIFEST_FILE).is_file():
            prepare(
                target,
                data,
                budget_words=words,
                seed=self.seed,
                valid_fraction=AUX_VALID_FRACTION,
                tokenizer_path=tokenizer,
                progress=self.progress,
            )
        manifest = load_manifest(data)
        self.target = data
        return sum(manifest["words"].values()), manifest["ledger"]["sources"]

    def conditional(self, prior_run: Path) -> Path:
        recipe = [f"data.path={self.target}", "name=conditional", f"train.init_from={prior_run}"]
        return self.train([*recipe, *self.extra, *FINETUNE])

    def score(self, prior_run, cond_run, tokenizer, scans, candidates, chunk_words):
        """(prior NLL, conditional NLL) of every candidate, batched on the chosen device."""
        import torch

        from thrifty.data.color_filter import candidate_texts, score_candidates
        from thrifty.data.tokenizer import load_tokenizer
        from thrifty.runs import load_model

        auto = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(auto if self.device == "auto" else self.device)
        prior, cond = load_model(prior_run, device).model, load_model(cond_run, device).model
        texts = candidate_texts(scans, candidates, chunk_words)
        return score_candidates(prior, cond, load_tokenizer(tokenizer), texts, device=device)
