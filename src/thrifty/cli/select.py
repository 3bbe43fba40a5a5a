"""``thrifty select POOL --target TEXT --tau 4 --keep-words N --budget-words B --out DIR``:
CoLoR-Filter.

Trains a prior LM on a random sample of the pool (or takes ``--prior RUN``), fine-tunes a copy on
the target text for one epoch (the card's defaults: lr 1e-3, 20 warm-up steps, fresh optimizer),
scores τ·N candidate pool words with both, keeps the N words whose loss drops most, and writes
them as a prepared dataset whose ledger charges both auxiliary models (`thrifty.data.color_filter`
has the rule and the accounting). ``--budget-words B`` is the total the whole pipeline may read
(the τ·N candidates, the target text, a given prior's words, a reused tokenizer's); it is checked
before any training and written into the ledger, so that ``thrifty audit`` holds the selection
(and every run trained on it) to it. Scores (``scores.tsv``) and the domain composition
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
from thrifty.cli.numbers import as_count
from thrifty.cli.select_aux import Aux
from thrifty.errors import UserError

log = logging.getLogger("thrifty.select")


class _Renamed(argparse.Action):
    """An option's old spelling: a one-line error naming the new one."""

    def __init__(self, option_strings, dest, new: str, meaning: str, **kwargs) -> None:
        self.new, self.meaning = new, meaning
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        raise UserError(f"{option_string} is now {self.new} N ({self.meaning})")


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
    p.add_argument("--keep-words", type=as_count, metavar="N", help="words to keep (required)")
    p.add_argument(
        "--budget-words",
        type=as_count,
        metavar="N",
        help="total budget of the pipeline: candidates + target + prior + tokenizer (required)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset to write")
    p.add_argument("--prior", metavar="RUN", help="take this prior instead of training one")
    p.add_argument("--prior-words", type=as_count, metavar="N", help="prior's sample (default N)")
    p.add_argument("--target-words", type=as_count, metavar="N", help="sample of the target")
    p.add_argument("--method", choices=("color", "conditional"), default="color")
    p.add_argument("--chunk-words", type=as_count, default=100, help="words per candidate chunk")
    p.add_argument("--config", type=Path, help="recipe of the auxiliary models (YAML)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides")
    p.add_argument("--work", type=Path, help="auxiliary runs and data (default OUT.work)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab-size", type=as_count, default=8192)
    p.add_argument("--valid-fraction", type=float, default=0.01)
    p.add_argument("--tokenizer", type=Path, help="use this tokenizer.json for everything")
    p.add_argument(
        "--tokenizer-words",
        type=as_count,
        metavar="N",
        help="its training words, if unrecorded",
    )
    p.add_argument("--new-tokenizer", action="store_true", help="train one on the selection")
    p.add_argument(
        "--max-charged-words", action=_Renamed, new="--budget-words", meaning="the total budget"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.keep_words is None:
        raise UserError(
            "thrifty select needs --keep-words N, the words to keep (--budget-words is the "
            "total budget of the whole pipeline)"
        )
    if args.budget_words is None:
        raise UserError(
            "thrifty select needs --budget-words N, the total the pipeline may read (candidates "
            "scored, target text, prior, tokenizer); e.g. the track's 10M or 100M"
        )
    summary = color_filter_select(
        args.pool,
        args.target,
        args.out,
        tau=args.tau,
        keep_words=args.keep_words,
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
        tokenizer_words=args.tokenizer_words,
        new_tokenizer=args.new_tokenizer,
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
    keep_words: int,
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
    tokenizer_words: int | None = None,
    new_tokenizer: bool = False,
    device: str = "auto",
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """The whole CoLoR-Filter pipeline; returns a summary (also in OUT/selection.json).

    ``keep_words``: words selected; ``budget_words``: the total the pipeline may read, the
    ledger's budget. ``tokenizer``: a tokenizer.json (or prepared dataset) for the prior's data,
    the target and the selection, e.g. to compare several selections with one vocabulary (its
    training words are charged; ``tokenizer_words`` states them when nothing records them); by
    default the prior's data trains one. ``new_tokenizer``: train a fresh one on the selection.
    """
    import torch

    from thrifty.data import color_filter as cf
    from thrifty.data.prepare import MANIFEST_FILE, scan_sources, write_selection

    start = time.perf_counter()
    out = Path(out)
    if (out / MANIFEST_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a prepared dataset is already here; pass --overwrite")
    if tau < 1 or keep_words < 1 or budget_words < 1:
        raise UserError(
            f"--tau must be >= 1, --keep-words and --budget-words positive "
            f"({tau}, {keep_words}, {budget_words})"
        )
    if threads:
        torch.set_num_threads(threads)
    work = Path(work) if work else out.with_name(out.name + ".work")
    request = {"pool": [str(p) for p in pool], "target": [str(t) for t in target], "tau": tau}
    request |= {"keep_words": keep_words, "prior": prior, "prior_words": prior_words}
    request |= {"target_words": target_words, "chunk_words": chunk_words, "seed": seed}
    request |= {"config": str(config) if config else None, "overrides": list(overrides)}
    request |= {"tokenizer": str(tokenizer) if tokenizer else None}
    tokenizer = Path(tokenizer) if tokenizer else None
    # a tokenizer given for everything: its words are charged (refused early if unrecorded)
    tokenizer_charge = 0
    if tokenizer is not None:
        from thrifty.data.provenance import reused_tokenizer

        tokenizer_charge = reused_tokenizer(tokenizer, tokenizer_words)[1]["trained_on_words"]
    elif tokenizer_words is not None:
        raise UserError("--tokenizer-words states the words of --tokenizer PATH; pass both")
    _check_work(work, request)
    aux = Aux(work, config, list(overrides), seed, device, threads, progress, tokenizer,
              tokenizer_words)  # fmt: skip

    # 1. candidates: tau·N words of the pool, each source its proportional share
    scans = scan_sources(pool, max_doc_words=chunk_words, progress=progress)
    n_candidates = round(tau * keep_words)
    available = sum(s.words for s in scans)
    if n_candidates > available:
        raise UserError(
            f"--tau {tau:g} x --keep-words {keep_words:,} needs {n_candidates:,} candidate "
            f"words; the pool holds {available:,}"
        )
    candidates = cf.sample_candidates(scans, n_candidates, seed)

    # 2. the prior (trained on a random sample of the candidates, or given), 3. the conditional
    n_target = target_words or sum(s.words for s in scan_sources(target))
    if prior is not None:
        if tokenizer is not None:
            raise UserError("--tokenizer and --prior: the prior's own tokenizer is used")
        prior_run, tokenizer, prior_words = aux.given_prior(prior)
    charged = n_candidates + n_target + (0 if prior is None else prior_words) + tokenizer_charge
    if charged > budget_words:
        raise UserError(
            f"this selection charges {charged:,} words (candidates + target + prior + "
            f"tokenizer), more than --budget-words {budget_words:,}; lower --tau or --keep-words"
        )
    if prior is None:
        prior_words = min(prior_words or keep_words, n_candidates)
        prior_run, tokenizer = aux.prior(scans, candidates, prior_words, vocab_size, chunk_words)
    n_target, target_sources = aux.target_data(target, target_words, tokenizer)
    cond_run = aux.conditional(prior_run)

    # 4. score every candidate under both models, keep the best N words
    t_score = time.perf_counter()
    prior_nll, cond_nll = aux.score(prior_run, cond_run, tokenizer, scans, candidates, chunk_words)
    t_score = time.perf_counter() - t_score
    scores = cf.selection_scores(prior_nll, cond_nll, method)
    kept = cf.top_words(np.concatenate([w[w > 0] for w in candidates]), scores, keep_words)
    selected = cf.unflatten(kept, candidates)

    # 5. the prepared dataset with its ledger, the scores and the composition
    ledger = cf.selection_ledger(
        method=method,
        tau=tau,
        seed=seed,
        candidate_words=n_candidates,
        selected_words=keep_words,
        prior_words=prior_words,
        prior_from_pool=prior is None,
        prior_texts=aux.prior_texts,
        target_words=n_target,
        target_sources=target_sources,
        budget_words=budget_words,
    )
    if new_tokenizer and aux.tokenizer is not None:  # the auxiliary models' tokenizer still counts
        ledger.charge_aux_model(f"auxiliary models' tokenizer {aux.tokenizer}", tokenizer_charge)
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
        tokenizer_words=None if new_tokenizer else aux.stated_words(tokenizer),
        overwrite=overwrite,
        progress=progress,
    )
    cf.write_scores(out / "scores.tsv", scans, candidates, prior_nll, cond_nll, scores, kept)
    summary = {
        "out": str(out),
        "method": method,
        "tau": tau,
        "candidate_words": n_candidates,
        "selected_words": keep_words,
        "target_words": n_target,
        "budget_words": budget_words,
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
