"""The ledger (how many words a run may see, has prepared, has seen, and from where), and the
selection rules that spend a word budget on documents.

BabyLM 2025 rules (challenge site and evaluation-pipeline-2025 README; see the BabyLM card in
the papers notes, after Choshen et al. 2024, arXiv 2404.06214): the training data of every model,
auxiliary ones included, counts against the word budget, and the training data may be repeated
for at most 10 epochs. ``thrifty prepare`` fills in the sources, the prepared words and the
tokenizer; the training loop charges the words the model sees; ``thrifty audit`` reads it back.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError

LEDGER_FILE = "ledger.json"
SELECTIONS = ("all", "prefix", "sample", "color_filter")
# words_seen accumulates floats step by step; exactly 10 epochs must not read as 10.0000001
_EPOCH_SLACK = 1e-9


@dataclass
class Ledger:
    """Allowed, prepared and seen words, with fingerprints of everything that produced them."""

    budget_words: int | None = None
    selection: str = "all"
    seed: int = 0
    # one dict per file: {"path", "sha256", "words_total", "words_used"}
    sources: list[dict[str, Any]] = field(default_factory=list)
    prepared_words: dict[str, int] = field(default_factory=lambda: {"train": 0, "valid": 0})
    # {"trained_on_words", "sha256", "vocab_size"} (+ "path" when reused from elsewhere)
    tokenizer: dict[str, Any] = field(
        default_factory=lambda: {"trained_on_words": 0, "sha256": "", "vocab_size": 0}
    )
    aux_models: list[dict[str, Any]] = field(default_factory=list)  # {"name", "words"}
    # model-generated words among the prepared training words (distillation): not charged,
    # because the model that wrote them is charged as an aux model (BabyLM rules)
    synthetic_words: int = 0
    # words counted twice in prepared + aux_models (an aux model re-reading the prepared text or
    # another aux model's words, e.g. CoLoR-Filter's scorers): subtracted, so each distinct word
    # is charged once while every model's reading stays on record
    overlap_words: int = 0
    # how a selection was made, for the audit (CoLoR-Filter: tau, pool, target, selected words)
    details: dict[str, Any] = field(default_factory=dict)
    words_seen: float = 0.0
    max_epochs: float = 10

    def charge_tokens(self, n_tokens: int, words_per_token: float) -> None:
        """Charge the words behind ``n_tokens`` tokens the trained model has just seen."""
        self.words_seen += n_tokens * words_per_token

    def charge_aux_model(self, name: str, words: int) -> None:
        """Charge words read by an auxiliary model (teacher, data selector, augmenter)."""
        for entry in self.aux_models:
            if entry["name"] == name:
                entry["words"] += int(words)
                return
        self.aux_models.append({"name": name, "words": int(words)})

    @property
    def train_words(self) -> int:
        return int(self.prepared_words.get("train", 0))

    @property
    def epochs(self) -> float:
        """Passes over the prepared training words so far."""
        return self.words_seen / self.train_words if self.train_words else 0.0

    def charged_words(self) -> int:
        """Distinct words charged to the budget: prepared text plus what aux models read.

        The tokenizer is trained on the prepared training text, so it adds no new words.
        Synthetic words are prepared but not charged (their generator is, as an aux model).
        """
        prepared = sum(int(v) for v in self.prepared_words.values()) - int(self.synthetic_words)
        aux = sum(int(m["words"]) for m in self.aux_models)
        return prepared + aux - int(self.overlap_words)

    def violations(self) -> list[str]:
        """Broken rules, one line each; empty when the run is within the rules."""
        found = []
        charged = self.charged_words()
        if self.budget_words is not None and charged > self.budget_words:
            found.append(
                f"charged words {charged:,} exceed the budget of {self.budget_words:,} words"
            )
        if self.epochs > self.max_epochs * (1 + _EPOCH_SLACK):
            found.append(f"{self.epochs:.3f} epochs exceed the maximum of {self.max_epochs:g}")
        return found

    def summary_lines(self) -> list[str]:
        """A human-readable account, one fact per line."""
        budget = "none" if self.budget_words is None else f"{self.budget_words:,} words"
        lines = [f"budget: {budget} (selection {self.selection}, seed {self.seed})"]
        for key, value in self.details.items():
            number = isinstance(value, int) and not isinstance(value, bool)
            lines.append(f"  {key}: {value:,}" if number else f"  {key}: {value}")
        train, valid = self.train_words, int(self.prepared_words.get("valid", 0))
        lines.append(
            f"prepared: {train + valid:,} words ({train:,} train, {valid:,} valid) "
            f"from {len(self.sources)} source file(s)"
        )
        shown = self.sources if len(self.sources) <= 30 else self.sources[:25]
        for s in shown:
            lines.append(
                f"  {s['path']}: {s['words_used']:,} of {s['words_total']:,} words, "
                f"sha256 {str(s['sha256'])[:12]}"
            )
        if len(shown) < len(self.sources):
            lines.append(f"  ... and {len(self.sources) - len(shown)} more source files")
        tok = self.tokenizer
        origin = f", from {tok['path']}" if tok.get("path") else ""
        lines.append(
            f"tokenizer: vocab {tok.get('vocab_size', 0):,}, trained on "
            f"{tok.get('trained_on_words', 0):,} words, "
            f"sha256 {str(tok.get('sha256'))[:12]}{origin}"
        )
        for m in self.aux_models:
            lines.append(f"auxiliary model {m['name']}: {m['words']:,} words")
        if self.synthetic_words:
            lines.append(
                f"synthetic: {self.synthetic_words:,} model-generated training words "
                "(not charged; their generator is)"
            )
        if self.overlap_words:
            lines.append(
                f"overlap: {self.overlap_words:,} words counted twice above (read by several "
                "models, or selected after being read); charged once"
            )
        charged = self.charged_words()
        share = f" ({charged / self.budget_words:.1%} of budget)" if self.budget_words else ""
        lines.append(f"charged: {charged:,} words{share}")
        lines.append(
            f"seen by the model: {self.words_seen:,.0f} words = {self.epochs:.2f} epochs "
            f"(max {self.max_epochs:g})"
        )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "ledger") -> Ledger:
        """Inverse of ``to_dict``; unknown keys are errors so typos don't pass silently."""
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise UserError(f"{where}: unknown key {key!r}")
        if data.get("selection", "all") not in SELECTIONS:
            raise UserError(f"{where}: selection {data['selection']!r} not in {SELECTIONS}")
        return cls(**copy.deepcopy(data))

    def save(self, path: Path) -> Path:
        """Write atomically to ``path`` (a file, or a folder that gets ``ledger.json``)."""
        path = Path(path)
        target = path / LEDGER_FILE if path.is_dir() else path
        write_text_atomic(target, json.dumps(self.to_dict(), indent=2) + "\n")
        return target

    @classmethod
    def load(cls, path: Path) -> Ledger:
        """Read a ledger from a file, or from ``ledger.json`` in a folder."""
        path = Path(path)
        target = path / LEDGER_FILE if path.is_dir() else path
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{target}: no ledger here") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{target}:{e.lineno}: not valid JSON ({e.msg})") from None
        return cls.from_dict(data, str(target))


# --- spending the budget: how many words of each document to keep -----------------------------
# Each function takes per-source arrays of document word counts and returns, per source, the
# words kept from each document (0 = skipped; less than the document = its first words).


def select_prefix(doc_words: list[np.ndarray], budget: int) -> list[np.ndarray]:
    """Documents in source order until ``budget`` words; the last one is cut to fit."""
    _check_budget(doc_words, budget)
    take, left = [], budget
    for words in doc_words:
        take.append(_fill(words, np.arange(len(words)), left))
        left -= int(take[-1].sum())
    return take


def select_sample(doc_words: list[np.ndarray], budget: int, seed: int) -> list[np.ndarray]:
    """Each source gets its proportional share of ``budget``, filled with whole documents in
    a seeded random order; the last document of each source is cut to fit the share exactly."""
    _check_budget(doc_words, budget)
    shares = proportional_shares(budget, [int(w.sum()) for w in doc_words])
    take = []
    for index, (words, share) in enumerate(zip(doc_words, shares, strict=True)):
        # one random stream per (seed, source): a source's choice doesn't hinge on the others
        order = np.random.default_rng([seed, 0, index]).permutation(len(words))
        take.append(_fill(words, order, share))
    return take


def proportional_shares(budget: int, totals: list[int]) -> list[int]:
    """floor(budget * w / W) per source, the remainder going to the largest fractions."""
    whole = sum(totals)
    shares = [budget * w // whole for w in totals]
    fractions = [budget * w % whole for w in totals]
    # ties go to the earlier source; a nonzero fraction means the share is below the total
    for i in sorted(range(len(totals)), key=lambda i: -fractions[i])[: budget - sum(shares)]:
        shares[i] += 1
    return shares


def split_valid(take: list[np.ndarray], fraction: float, seed: int) -> list[np.ndarray]:
    """Seeded choice of whole selected documents for validation, about ``fraction`` of the
    words; at least one document when two or more are selected and ``fraction`` > 0."""
    flat = np.concatenate(take) if take else np.zeros(0, dtype=np.int64)
    valid = np.zeros(len(flat), dtype=bool)
    chosen = np.flatnonzero(flat)
    if fraction > 0 and len(chosen) >= 2:
        order = chosen[np.random.default_rng([seed, 1]).permutation(len(chosen))]
        target = fraction * int(flat.sum())
        n = int(np.searchsorted(np.cumsum(flat[order]), target)) + 1  # first prefix to reach it
        valid[order[: min(n, len(chosen) - 1)]] = True  # keep at least one training document
    return np.split(valid, np.cumsum([len(t) for t in take])[:-1]) if take else []


def _fill(words: np.ndarray, order: np.ndarray, quota: int) -> np.ndarray:
    """Take documents in ``order`` until ``quota`` words; cut the last one to fit."""
    take = np.zeros(len(words), dtype=np.int64)
    if quota <= 0 or len(words) == 0:
        return take
    cumulative = np.cumsum(words[order])
    k = int(np.searchsorted(cumulative, quota))  # first document that reaches the quota
    take[order[:k]] = words[order[:k]]
    if k < len(order):
        take[order[k]] = quota - (int(cumulative[k - 1]) if k else 0)
    return take


def _check_budget(doc_words: list[np.ndarray], budget: int) -> None:
    total = sum(int(w.sum()) for w in doc_words)
    if budget > total:
        raise UserError(
            f"budget of {budget:,} words is larger than the corpus ({total:,} words in "
            f"{len(doc_words)} file(s)); lower --budget-words or add sources"
        )
