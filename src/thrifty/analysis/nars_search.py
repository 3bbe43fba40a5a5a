"""Predictor-guided joint architecture–recipe search (FBNetV3's NARS, Dai et al. 2021) over
sweep runs: ``thrifty sweep SWEEP.yaml --nars``.

The ``nars:`` section of a sweep::

    nars:
      space:                         # thrifty.analysis.nars_space
        model.n_layers: [1, 2, 3]
        model.d_model: [32, 64, 96]
        train.lr: {log_uniform: [3.0e-4, 1.0e-2]}
      metric: val_loss               # lower is better
      initial: 10                    # Sobol candidates measured first
      rounds: 2                      # then per round: fit, evolve, measure the best predicted
      per_round: 5
      proxies: 2000                  # unmeasured candidates the predictor is pretrained on
      pretrain: true
      seed: 0

1. ``initial`` Sobol candidates are trained (each a normal sweep run: cached in the sweep's
   index, resumable, on the sweep's executor).
2. The predictor (``thrifty.analysis.predictor``) is pretrained on the free statistics of
   ``proxies`` more candidates: log non-embedding parameters, log FLOPs per token and log
   FLOPs of the planned training (FLOPs per token × epochs or steps), from the model built on
   the meta device.
3. Each round fine-tunes it on every measured candidate, runs an evolutionary search
   (mutation and crossover from the measured best and fresh Sobol samples, scored by the
   predictor) and trains the ``per_round`` best-predicted candidates not yet measured.

Every measured metric is appended to ``<sweep_dir>/nars-<seed>.jsonl`` with its candidate, so
a stopped search resumes where it was (and searches of other seeds keep their own budgets,
though they share the trained runs of candidates they have in common). The sweep's grid and
runs are not used.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from thrifty.analysis.nars_space import (
    Axis,
    Candidate,
    crossover,
    encode,
    mutate,
    parse_space,
    sobol_candidates,
)
from thrifty.analysis.predictor import MetricPredictor
from thrifty.analysis.sweep import Sweep
from thrifty.errors import UserError
from thrifty.jsonl import read_jsonl

KEYS = ("space", "metric", "initial", "rounds", "per_round", "proxies", "pretrain", "seed")


@dataclass
class NarsSpec:
    axes: list[Axis]
    metric: str = "val_loss"
    initial: int = 10
    rounds: int = 2
    per_round: int = 5
    proxies: int = 2000
    pretrain: bool = True
    seed: int = 0


def parse_nars(raw: Any) -> NarsSpec:
    if not isinstance(raw, dict):
        raise UserError("sweep has no nars: section (a mapping with space:, metric:, ...)")
    unknown = set(raw) - set(KEYS)
    if unknown:
        raise UserError(f"nars: unknown key {sorted(unknown)[0]!r} (known: {', '.join(KEYS)})")
    spec = NarsSpec(parse_space(raw.get("space")))
    for key in KEYS[1:]:
        if key in raw:
            setattr(spec, key, type(getattr(spec, key))(raw[key]))
    for key in ("initial", "per_round", "proxies"):
        if getattr(spec, key) < 1:
            raise UserError(f"nars: {key} must be at least 1, got {getattr(spec, key)}")
    return spec


def key_of(candidate: Candidate) -> str:
    return json.dumps(sorted(candidate.items()))


@dataclass
class NarsResult:
    best: Candidate
    metric: float
    measured: list[tuple[Candidate, float]] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)  # per round: predicted and measured


class Nars:
    """One search over ``sweep``; ``execute`` trains a batch of sweep runs (``run_sweep``)."""

    def __init__(self, sweep: Sweep, spec: NarsSpec, execute: Callable, stream: IO) -> None:
        self.sweep, self.spec, self.execute, self.stream = sweep, spec, execute, stream
        self.cache = sweep.sweep_dir / f"nars-{spec.seed}.jsonl"
        self.measured: dict[str, tuple[Candidate, float]] = {}
        self._sources: dict[str, Any] = {}  # data folder -> its training source (``fitted``)
        if self.cache.is_file():
            for row in read_jsonl(self.cache, repair=True):
                self.measured[key_of(row["candidate"])] = (row["candidate"], row["metric"])

    def config(self, candidate: Candidate):
        """The resolved RunConfig of a candidate, or None when the config rejects it."""
        try:
            return self.sweep.build([candidate])[0].cfg
        except UserError:
            return None

    def valid(self, candidate: Candidate) -> bool:
        return self.config(candidate) is not None

    def fitted(self, cfg):
        """``cfg`` with what its prepared data decides, as training fits it (the vocabulary;
        for images the stem's size and channels and the tokens per image). Each data folder is
        opened once; one not prepared yet leaves the config as it is, with a 256-token
        vocabulary where it names none."""
        from thrifty.data.source import open_source

        path = str(cfg.data.path)
        if path not in self._sources:
            prepared = (Path(path) / "manifest.json").is_file()
            self._sources[path] = open_source(path, "train") if prepared else None
        source = self._sources[path]
        if source is None:
            return replace(cfg, model=replace(cfg.model, vocab_size=cfg.model.vocab_size or 256))
        model = source.fit(cfg.model)
        tokens = source.item_tokens(model)
        data = cfg.data if tokens is None else replace(cfg.data, seq_len=tokens)
        return replace(cfg, model=model, data=data)

    def proxies(self, candidate: Candidate) -> list[float]:
        """log params (non-embedding), log FLOPs per token, log planned training FLOPs."""
        from thrifty.models.transformer import Transformer

        cfg = self.fitted(self.config(candidate))
        with torch.device("meta"):
            model = Transformer(cfg.model)
        flops = model.flops_per_token(cfg.data.seq_len)
        length = cfg.train.max_epochs or cfg.train.max_steps or 1
        return [
            math.log(model.num_params(embeddings=False)),
            math.log(flops),
            math.log(flops * float(length)),
        ]

    def measure(self, candidates: list[Candidate]) -> None:
        todo = [c for c in candidates if key_of(c) not in self.measured]
        if not todo:
            return
        runs = self.sweep.build(todo)
        rows = self.execute(self.sweep, runs)
        for candidate, run in zip(todo, runs, strict=True):
            row = rows[run.name]
            value = row.get("metrics", {}).get(self.spec.metric)
            metric = math.inf if row["status"] == "failed" or value is None else float(value)
            self.measured[key_of(candidate)] = (candidate, metric)
            with open(self.cache, "a", encoding="utf-8") as f:
                f.write(json.dumps({"candidate": candidate, "metric": metric}) + "\n")

    def predictor(self) -> MetricPredictor:
        spec = self.spec
        width = sum(a.width for a in spec.axes)
        predictor = MetricPredictor(width, seed=spec.seed)
        if spec.pretrain:
            pool = sobol_candidates(spec.axes, spec.proxies, spec.seed + 1, self.valid)
            x = np.array([encode(spec.axes, c) for c in pool])
            predictor.pretrain(x, np.array([self.proxies(c) for c in pool]))
        return predictor

    def evolve(self, predictor: MetricPredictor, rng: np.random.Generator) -> list[Candidate]:
        """Candidates not yet measured, best predicted first."""
        spec = self.spec
        finite = sorted((m, k) for k, (_, m) in self.measured.items() if math.isfinite(m))
        parents = [self.measured[k][0] for _, k in finite[:8]]
        fresh = sobol_candidates(spec.axes, 32, int(rng.integers(1 << 30)), self.valid)
        population = {key_of(c): c for c in parents + fresh}
        for _ in range(10):  # generations
            pool = list(population.values())
            for _ in range(48):
                a, b = (pool[i] for i in rng.integers(len(pool), size=2))
                child = mutate(spec.axes, crossover(spec.axes, a, b, rng), rng)
                if key_of(child) not in population and self.valid(child):
                    population[key_of(child)] = child
            pool = list(population.values())
            scores = predictor.predict(np.array([encode(spec.axes, c) for c in pool]))
            keep = np.argsort(scores)[:32]
            population = {key_of(pool[i]): pool[i] for i in keep}
        pool = [c for c in population.values() if key_of(c) not in self.measured]
        scores = predictor.predict(np.array([encode(spec.axes, c) for c in pool]))
        return [pool[i] for i in np.argsort(scores)]

    def run(self) -> NarsResult:
        spec = self.spec
        rng = np.random.default_rng(spec.seed)
        self.measure(sobol_candidates(spec.axes, spec.initial, spec.seed, self.valid))
        predictor = self.predictor()
        rounds = []
        for number in range(spec.rounds):
            measured = list(self.measured.values())
            finite = [(c, m) for c, m in measured if math.isfinite(m)]
            predictor.fit(
                np.array([encode(spec.axes, c) for c, _ in finite]),
                np.array([m for _, m in finite]),
            )
            chosen = self.evolve(predictor, rng)[: spec.per_round]
            predicted = predictor.predict(np.array([encode(spec.axes, c) for c in chosen]))
            self.measure(chosen)
            got = [self.measured[key_of(c)][1] for c in chosen]
            rounds.append({"round": number + 1, "predicted": predicted.tolist(), "measured": got})
            print(
                f"nars round {number + 1}: measured {len(chosen)}, best so far "
                f"{min(m for _, m in self.measured.values()):.4f}",
                file=self.stream,
            )
        best, metric = min(self.measured.values(), key=lambda cm: cm[1])
        return NarsResult(best, metric, list(self.measured.values()), rounds)


def nars_sweep(
    sweep: Sweep,
    *,
    jobs: int = 1,
    threads: int | None = None,
    stream: IO = sys.stderr,
    execute: Callable[..., dict[str, dict]] | None = None,
) -> NarsResult:
    """The search of ``sweep``'s ``nars:`` section; ``execute`` as for ``search_sweep``."""
    from thrifty.analysis.runner import run_sweep

    spec = parse_nars(sweep.nars)
    train = execute or run_sweep

    def execute_runs(sweep: Sweep, runs) -> dict[str, dict]:
        return train(sweep, runs, jobs=jobs, threads=threads, retry_failed=True, stream=stream)

    sweep.sweep_dir.mkdir(parents=True, exist_ok=True)
    return Nars(sweep, spec, execute_runs, stream).run()
