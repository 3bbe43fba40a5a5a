"""Reading: how much word surprisal adds to predicting human reading times, as the BabyLM 2025
pipeline computes it (``evaluation_pipeline/reading/run.py``, after de Varda, Marelli & Amenta
2023, "Cloze probability, predictability ratings, and computational estimates for 205 English
sentences, aligned with existing EEG and reading time data", Behavior Research Methods).

``reading_data.csv`` has one row per measured word of 205 sentences: ``item`` (the words before
it, the context), ``word`` (as printed, punctuation included), ``Subtlex_log10`` (frequency),
``length``, ``context_length`` (words before it), ``prev_word`` / ``prev_item`` / ``prev_length``
(the previous word, when it is measured too), and eleven measures: eye tracking (``RTfirstfix``,
``RTfirstpass``, ``RTgopast``, ``RTrightbound``), ``self_paced_reading_time`` and six ERP
components. Each row is scored on its own, as the pipeline does: surprisal = -log p(word | item)
in nats, and the previous word's surprisal from its own (prev_item, prev_word).

Regressions (OLS, :mod:`thrifty.eval.regression`), per measure, on the rows where every variable
is present (words without a frequency drop out):

- plain: baseline ``freq + length + context_length`` and their pairwise interactions; model:
  the baseline + surprisal;
- spill-over: the baseline also holds ``prev_length`` and the previous word's surprisal, all ten
  pairwise interactions of the five; model: + surprisal (rows without a previous word drop out).

The score of a measure is the pipeline's relative gain, ΔR² / (1 − R²_baseline): the share of
the variance the baseline leaves that surprisal explains. ``subtasks`` are the pipeline's two
reported numbers (its "EYE TRACKING SCORE" and "SELF-PACED READING SCORE", given here as
fractions, not percent): ``eye_tracking``, the mean over the four eye-tracking measures of the
plain fits, and ``self_paced_reading``, ``self_paced_reading_time`` with spill-over. ``score``
is their unweighted mean (the pipeline reports them separately). Per measure, ``measures`` and
``measures_spillover`` give the coefficient, t, p, R², ΔR², the relative gain and AIC;
``correlations`` the Pearson r of surprisal with each measure.

Surprisal by backend (:meth:`thrifty.eval.tasks.Scorer.word_logprobs`): ``causal`` scores the
word as a continuation of its context; ``mlm`` / ``mntp`` use the pipeline's multi-mask ending
(:mod:`thrifty.eval.mask_ending`, ``mask_tokens`` = 3). Where thrifty departs from the pipeline's
code, on purpose: the word is scored with its leading space (" counter." after "... on the"), as
in running text; the pipeline tokenizes the word alone, which a tokenizer without a prefix space
reads as glued to the context. ``<s>`` opens every context. The word "None" meets pandas'
missing-value parsing twice: the file's one empty context is read as "None", as the pipeline's
``fillna("None")`` does (it is "None of the city people ...", whose first word was lost when the
file was written); the one previous-word context "None" stays text here, where the pipeline
reads it as missing and so fits its spill-over regressions on one row fewer.

``max_items_per_subtask`` keeps a seeded sample of whole sentences (all their words), so that a
previous word stays in the same sample; with too few rows for a fit the numbers are NaN.
``subtasks`` here names which of ``eye_tracking`` / ``self_paced_reading`` enter ``score``.
"""

from __future__ import annotations

import csv
import gzip
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from thrifty.errors import UserError
from thrifty.eval.records import subsample, write_jsonl
from thrifty.eval.regression import Fit, ols
from thrifty.eval.tasks import EVAL_TASKS, Scorer, Task, TaskConfig
from thrifty.registry import suggest

EYE_TRACKING = ("RTfirstfix", "RTfirstpass", "RTgopast", "RTrightbound")
SELF_PACED = "self_paced_reading_time"
MEASURES = (*EYE_TRACKING, SELF_PACED, "ELAN", "LAN", "N400", "P600", "EPNP", "PNP")
BASELINE = ("Subtlex_log10", "length", "context_length")
SPILLOVER = (*BASELINE, "prev_length", "prev_surprisal")
TEXT = ("item", "word", "prev_item", "prev_word", "sent_id")
SUBTASKS = ("eye_tracking", "self_paced_reading")
# What pandas.read_csv reads as missing in a numeric column (the pipeline's parser).
MISSING = {"", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "NULL", "null", "#N/A", "None"}


@dataclass(frozen=True)
class Word:
    index: int  # row in the file, the pipeline's prediction id
    sentence: str  # sent_id
    context: str
    word: str
    prev_context: str  # "" when the previous word is not measured
    prev_word: str
    values: dict[str, float] = field(repr=False)  # predictors and measures, NaN when missing


def data_file(folder: Path) -> Path:
    """The ``*.csv[.gz]`` of a reading folder (or the file itself)."""
    if not folder.exists():
        raise UserError(f"evaluation data not found: {folder}")
    if folder.is_file():
        return folder
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise UserError(f"{folder} should hold one reading *.csv[.gz] file, found: {found}")
    return files[0]


def read_words(path: Path) -> list[Word]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    needed = (*TEXT, *BASELINE, "prev_length", *MEASURES)
    missing = [c for c in needed if rows and c not in rows[0]]
    if not rows or missing:
        name = missing[0] if missing else needed[0]
        raise UserError(f"{path}: no column {name!r}{suggest(name, list(rows[0]) if rows else [])}")
    words = []
    for n, row in enumerate(rows):
        if not row["word"]:
            raise UserError(f"{path}:{n + 2}: empty 'word'")
        try:
            values = {c: _number(row[c]) for c in (*BASELINE, "prev_length", *MEASURES)}
        except ValueError as e:
            raise UserError(f"{path}:{n + 2}: {e}") from None
        context = row["item"] or "None"  # the pipeline's fillna; see the module docstring
        words.append(Word(n, row["sent_id"], context, row["word"], row["prev_item"],
                          row["prev_word"], values))  # fmt: skip
    return words


def _number(text: str) -> float:
    text = text.strip()
    return math.nan if text in MISSING else float(text)


def continuation(context: str, word: str) -> tuple[str, str]:
    """(context, " word"): the separating space belongs to the word, as in running text."""
    return context, (" " + word if context else word)


@dataclass(kw_only=True)
class ReadingConfig(TaskConfig):
    mask_tokens: int = 3
    """Masks after the context when mlm / mntp models predict a word (the pipeline's 3)."""


@EVAL_TASKS.register("reading")
class Reading(Task):
    """Gain in explained variance of reading times when word surprisal joins the baseline."""

    default_subdir = "babylm_eval/full_eval/reading"
    metric = "relative_delta_r2"
    Config = ReadingConfig

    def read(self, folder: Path) -> list[Word]:
        unknown = [s for s in self.cfg.subtasks or [] if s not in SUBTASKS]
        if unknown:
            raise UserError(f"reading has no subtask {unknown[0]!r}; choose from {SUBTASKS}")
        words = read_words(data_file(Path(folder)))
        by_sentence: dict[str, list[Word]] = {}
        for w in words:
            by_sentence.setdefault(w.sentence, []).append(w)
        keep = subsample({"sentences": list(by_sentence)}, self.cfg.max_items_per_subtask,
                         self.cfg.seed)["sentences"]  # fmt: skip
        kept = set(keep)
        return [w for w in words if w.sentence in kept]

    def evaluate(self, scorer: Scorer, folder: Path, *, items_path: Path | None = None) -> dict:
        words = self.read(folder)
        start = time.perf_counter()
        jobs = [continuation(w.context, w.word) for w in words]
        jobs += [continuation(w.prev_context, w.prev_word) for w in words if w.prev_context]
        jobs = list(dict.fromkeys(jobs))
        values = scorer.word_logprobs([c for c, _ in jobs], [t for _, t in jobs],
                                      mask_tokens=self.cfg.mask_tokens)  # fmt: skip
        surprisal = {job: -v for job, v in zip(jobs, values, strict=True)}
        seconds = time.perf_counter() - start

        columns = {c: np.array([w.values[c] for w in words]) for c in (*BASELINE, "prev_length")}
        columns |= {m: np.array([w.values[m] for w in words]) for m in MEASURES}
        columns["surprisal"] = np.array([surprisal[continuation(w.context, w.word)] for w in words])
        columns["prev_surprisal"] = np.array([
            surprisal[continuation(w.prev_context, w.prev_word)] if w.prev_context else math.nan
            for w in words
        ])  # fmt: skip
        plain = {m: gain(columns, m, BASELINE) for m in MEASURES}
        spill = {m: gain(columns, m, SPILLOVER) for m in MEASURES}
        eye = [plain[m]["relative_delta_r2"] for m in EYE_TRACKING]
        subtasks = {
            "eye_tracking": {"score": sum(eye) / len(eye), "n": plain[EYE_TRACKING[0]]["n"]},
            "self_paced_reading": {"score": spill[SELF_PACED]["relative_delta_r2"],
                                   "n": spill[SELF_PACED]["n"]},
        }  # fmt: skip
        subtasks = {k: v for k, v in subtasks.items() if k in (self.cfg.subtasks or SUBTASKS)}
        if items_path is not None:
            write_jsonl(items_path, [
                {"index": w.index, "sent_id": w.sentence, "context": w.context, "word": w.word,
                 "surprisal": float(s), "prev_surprisal": None if math.isnan(p) else float(p)}
                for w, s, p in zip(words, columns["surprisal"], columns["prev_surprisal"])
            ])  # fmt: skip
        score = sum(v["score"] for v in subtasks.values()) / len(subtasks)
        return {
            **self.head(scorer, folder),
            "score": score,
            "macro": score,
            "subtasks": subtasks,
            "measures": plain,
            "measures_spillover": spill,
            "correlations": {m: pearson(columns["surprisal"], columns[m]) for m in MEASURES},
            "mask_tokens": self.cfg.mask_tokens if scorer.backend != "causal" else None,
            "n_items": len(words),
            "n_texts": len({w.sentence for w in words}),
            "n_sentences": len(jobs),
            "seconds": seconds,
            "sentences_per_s": len(jobs) / seconds if seconds > 0 else float("inf"),
        }


def design(columns: dict[str, np.ndarray], names: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
    """Intercept, main effects and every pairwise interaction (the pipeline's formulas)."""
    main = [columns[n][rows] for n in names]
    pairs = [main[i] * main[j] for i in range(len(main)) for j in range(i + 1, len(main))]
    return np.column_stack([np.ones(int(rows.sum())), *main, *pairs])


def gain(columns: dict[str, np.ndarray], measure: str, baseline: tuple[str, ...]) -> dict:
    """Baseline vs baseline + surprisal for one measure, on rows where all are present."""
    used = (measure, "surprisal", *baseline)
    rows = np.logical_and.reduce([~np.isnan(columns[c]) for c in used])
    y = columns[measure][rows]
    base_x = design(columns, baseline, rows)
    base = ols(y, base_x)
    full = ols(y, np.column_stack([base_x, columns["surprisal"][rows]]))
    return _summary(base, full)


def _summary(base: Fit, full: Fit) -> dict:
    delta = full.r2 - base.r2
    relative = delta / (1.0 - base.r2) if base.r2 < 1.0 else math.nan
    return {
        "coefficient": float(full.params[-1]) if len(full.params) else math.nan,
        "t": float(full.t[-1]),
        "p_value": float(full.p[-1]),
        "r2": full.r2,
        "r2_baseline": base.r2,
        "delta_r2": delta,
        "relative_delta_r2": relative,
        "aic": full.aic,
        "delta_aic": full.aic - base.aic,
        "n": full.n,
    }


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r over the rows where both are present; NaN when either is constant."""
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2:
        return math.nan
    x, y = x[keep] - x[keep].mean(), y[keep] - y[keep].mean()
    denom = math.sqrt(float((x @ x) * (y @ y)))
    return float(x @ y / denom) if denom > 0 else math.nan
