"""Zero-shot evaluation tasks: the ``EVAL_TASKS`` registry, the scorer they share, and where
their data lives.

Members (file names under a *data root*, the layout of the BabyLM evaluation data; the scoring
of each follows ``babylm/evaluation-pipeline-2025``, see ``papers/babylm_challenge.md`` §3-4):

================  ================================================  ==========================
task              default folder under the data root                metric
================  ================================================  ==========================
blimp             blimp/                                            accuracy, macro over 67
blimp_filtered    babylm_eval/full_eval/blimp_filtered/             paradigms (ties wrong)
blimp_supplement  babylm_eval/full_eval/supplement_filtered/        accuracy, macro over files
blimp_fast        babylm_eval/fast_eval/blimp_fast/                 as blimp_filtered
supplement_fast   babylm_eval/fast_eval/supplement_fast/            as blimp_supplement
entity_tracking   babylm_eval/full_eval/entity_tracking/            accuracy, mean over files
ewok              babylm_eval/full_eval/ewok_filtered/ (not         accuracy, mean over domains
                  redistributable: fetch it under EWoK's terms)
reading           babylm_eval/full_eval/reading/                    relative ΔR² of surprisal
wug               babylm_eval/full_eval/wug_adj_nominalization/     Spearman rho with humans
closed_book_qa    closed_book_qa/ (a world's questions, written by  accuracy, cloze and choice,
                  ``thrifty synthesize-world``; no shared data)     direct and composed
================  ================================================  ==========================

Every task scores through a :class:`Scorer` (a model, its tokenizer and a backend: ``causal``,
``mntp`` or ``mlm`` with PLL variant ``original`` or ``within_word_l2r``), so tests can swap in a
stub. ``evaluate`` returns one result dict; its schema is the same for every task, so reports
read all of them alike:

- ``task``, ``data`` (folder read), ``backend``, ``variant``;
- ``metric``: ``"accuracy"`` (fraction in [0, 1]), ``"spearman"`` (rho in [-1, 1]) or
  ``"relative_delta_r2"`` (reading: ΔR² / (1 − R²_baseline), a fraction, not the pipeline's %);
- ``score``: the headline number; ``macro``: the same number (the key BLiMP results always had);
- ``subtasks``: ``{name: {"score": float, "n": int}}``, the units ``score`` averages over
  (paradigms, supplement files, entity-tracking subsets ``<file>_<numops>_ops``, EWoK domains,
  reading's ``eye_tracking`` and ``self_paced_reading``, or the one wug file);
- ``n_items``, ``n_sentences`` (distinct sequences scored), ``seconds``, ``sentences_per_s``;
- task extras: minimal pairs add ``paradigms`` (accuracy, n, phenomenon), ``phenomena``,
  ``n_pairs``, ``n_paradigms``; entity tracking adds ``splits`` (per file) and
  ``item_accuracy``; EWoK adds ``comparison``, ``context_types``, ``context_contrasts``,
  ``target_contrasts`` and ``item_accuracy``; reading adds ``measures``,
  ``measures_spillover``, ``correlations``, ``mask_tokens`` and ``n_texts``; wug adds nothing.

``thrifty eval`` adds ``run``, ``checkpoint``, ``step``, ``objective``, ``ledger``,
``max_items_per_subtask`` and ``seed`` and writes ``<run>/eval/<task>_<backend>[_<variant>].json``,
and beside it the pipeline's own result files (:mod:`thrifty.eval.pipeline_layout`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from thrifty.errors import UserError
from thrifty.eval.mask_ending import score_mask_ending
from thrifty.eval.scoring import score_continuations, score_sentences
from thrifty.registry import Registry

EVAL_TASKS = Registry("eval task")
DATA_ENV = "THRIFTY_DATA"
log = logging.getLogger("thrifty.eval")


@dataclass
class Scorer:
    """A model, its tokenizer and a scoring backend: summed log-probs (nats) of texts."""

    model: Any
    tokenizer: Any
    backend: str
    variant: str = "original"
    max_batch_tokens: int | None = None
    device: str | None = None

    def _kwargs(self) -> dict:
        return {
            "variant": self.variant,
            "max_batch_tokens": self.max_batch_tokens,
            "device": self.device,
        }

    def sentences(self, texts: Sequence[str]) -> list[float]:
        """log p(text) for each text, ``<s>`` prepended."""
        return score_sentences(self.model, self.tokenizer, texts, self.backend, **self._kwargs())

    def continuations(self, contexts: Sequence[str], texts: Sequence[str]) -> list[float]:
        """log p(text | context), summed over the text's tokens only."""
        return score_continuations(
            self.model, self.tokenizer, contexts, texts, self.backend, **self._kwargs()
        )

    def word_logprobs(
        self, contexts: Sequence[str], words: Sequence[str], mask_tokens: int = 3
    ) -> list[float]:
        """log p(word | context) as a reading-time predictor: a continuation for ``causal``; for
        ``mlm`` / ``mntp`` the pipeline's multi-mask ending (its own left-to-right reading of the
        word, so the PLL ``variant`` does not apply)."""
        if self.backend == "causal":
            return self.continuations(contexts, words)
        return score_mask_ending(
            self.model,
            self.tokenizer,
            contexts,
            words,
            self.backend,
            mask_tokens=mask_tokens,
            max_batch_tokens=self.max_batch_tokens,
            device=self.device,
        )


@dataclass(kw_only=True)
class TaskConfig:
    max_items_per_subtask: int | None = None
    """Seeded subsample of each subtask (paradigm, subset); None: every item."""
    subtasks: list[str] | None = None
    """Only these files, named without .jsonl[.gz]; None: every file of the folder."""
    seed: int = 0
    """Seed of the subsample."""


class Task:
    """One zero-shot task: knows its folder under a data root and how to score it."""

    default_subdir: ClassVar[str]
    metric: ClassVar[str] = "accuracy"
    data_hint: ClassVar[str] = ""
    """Appended to the missing-data error: where to get data thrifty cannot point to."""
    Config = TaskConfig

    def __init__(self, cfg: TaskConfig | None = None) -> None:
        self.cfg = cfg or self.Config()

    def evaluate(self, scorer: Scorer, folder: Path, *, items_path: Path | None = None) -> dict:
        """Score the task's files in ``folder``; see the module docstring for the result."""
        raise NotImplementedError

    def head(self, scorer: Scorer, folder: Path) -> dict:
        """Fields every result starts with."""
        return {
            "task": self.registry_name,  # type: ignore[attr-defined]
            "data": str(folder),
            "backend": getattr(scorer, "backend", None),
            "variant": getattr(scorer, "variant", None),
            "metric": self.metric,
        }


def task_names(spec: str) -> list[str]:
    """``"all"`` or a comma-separated list of task names, checked (with suggestions)."""
    if spec.strip() == "all":
        return EVAL_TASKS.names()
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        choices = ", ".join(["all", *EVAL_TASKS.names()])
        raise UserError(f"no task named in {spec!r}; choose from {choices}")
    for name in names:
        EVAL_TASKS.get(name)  # raises with "did you mean" on a typo
    return list(dict.fromkeys(names))


def data_roots(explicit: str | Path | None, blimp_data: str | None) -> list[tuple[Path, str]]:
    """Candidate data roots, most specific first, each with where it came from."""
    if explicit is not None:
        return [(Path(explicit), "--data-root")]
    roots = []
    if blimp_data:
        roots.append((Path(blimp_data).parent, "the parent of config eval.blimp_data"))
    if os.environ.get(DATA_ENV):
        roots.append((Path(os.environ[DATA_ENV]), f"${DATA_ENV}"))
    return roots


def task_folder(name: str, explicit: str | Path | None, blimp_data: str | None) -> Path:
    """The folder a task reads: ``<root>/<default_subdir>`` for the first root that has it.

    Roots, in order: ``explicit`` (``--data-root``) alone when given; otherwise the parent of the
    run's ``eval.blimp_data`` (for ``blimp`` that folder itself), then ``$THRIFTY_DATA``.
    """
    task = EVAL_TASKS.get(name)
    sub = task.default_subdir
    if explicit is None and name == "blimp" and blimp_data and Path(blimp_data).exists():
        return Path(blimp_data)
    roots = data_roots(explicit, blimp_data)
    for root, _ in roots:
        if (root / sub).exists():
            return root / sub
    hint = f"; {task.data_hint}" if task.data_hint else ""
    if not roots:
        raise UserError(
            f"no data for task {name!r}: pass --data-root DIR (a folder holding {sub}/), "
            f"--data DIR, set ${DATA_ENV}, or set the run's eval.blimp_data{hint}"
        )
    tried = "; ".join(f"{root / sub} ({origin})" for root, origin in roots)
    raise UserError(f"no data for task {name!r}: tried {tried}{hint}")


def task_folders(
    names: Sequence[str],
    explicit: str | Path | None,
    blimp_data: str | None,
    *,
    skip_missing: bool = False,
) -> dict[str, Path]:
    """Each task's folder (:func:`task_folder`). ``skip_missing`` (``--task all``): a task
    without data is left out with one info line, and only no data at all is an error."""
    folders, first_error = {}, None
    for name in names:
        try:
            folders[name] = task_folder(name, explicit, blimp_data)
        except UserError as e:
            if not skip_missing:
                raise
            first_error = first_error or e
            tried = ", ".join(_tried(name, explicit, blimp_data))
            log.info("%s skipped: no data (%s)", name, tried)
    if not folders and first_error is not None:
        raise first_error
    return folders


def _tried(name: str, explicit: str | Path | None, blimp_data: str | None) -> list[str]:
    sub = EVAL_TASKS.get(name).default_subdir
    return [str(root / sub) for root, _ in data_roots(explicit, blimp_data)] or [f"{sub}/"]
