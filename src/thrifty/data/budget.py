"""The ledger: how many words a run may see, has prepared, has seen, and from where.
(``thrifty.data.selection`` holds the rules that spend a word budget on documents.)

BabyLM 2025 rules (challenge site and evaluation-pipeline-2025 README; see the BabyLM card in
the papers notes, after Choshen et al. 2024, arXiv 2404.06214): the training data of every model,
auxiliary ones included, counts against the word budget, and the training data may be repeated
for at most 10 epochs. ``thrifty prepare`` fills in the sources, the prepared words and the
tokenizer; the training loop charges the words the model sees; ``thrifty audit`` reads it back.

Charged words (``charged_words``): the prepared words (less model-generated ones, whose generator
is charged instead, and less words derived by a fixed rule from words charged here, such as
obfuscated twins of code), plus every auxiliary model's reading, plus the tokenizer's training words
unless they are provably among those already charged, less ``overlap_words`` (what the entries
above count twice). The proof is by content: ``texts`` holds the sha256 of the training text as
prepared (``thrifty.data.provenance``), an auxiliary entry may list the texts its words include,
and a tokenizer records the sha256 of the text it was trained on. A tokenizer trained on the
prepared training split, or on one of those texts, adds nothing; any other tokenizer (one reused
from another dataset, or one whose training words the user stated) is charged in full.

Units: text counts words; a dataset of another modality (``thrifty.data.source``) keeps the
same ledger in its own unit (``unit``: images, pairs, transitions), and every field named
``words`` then counts that unit.

Exposure (the epoch rule): the model's own passes are ``words_seen / train_words``. Other passes
over words that reach the model are ``exposure`` entries ``{"name", "words", "passes",
"sources"}`` (``sources``: sha256 of the files the words come from; empty: unknown): the start
model of ``train.init_from`` (its own passes and its exposure, carried whole), the replay set of
the ``replay`` objective (replayed rows / replay windows), and the teachers of a distillation
mix (their passes over their training data). A word can be in two word sets only if they share a
source file, so the passes over any word are at most the passes of its set plus those of every
set sharing a file with it (a set of unknown files shares with all): ``max_passes`` is the
largest such sum, and the audit fails past ``max_epochs``. Auxiliary models that only score or
filter text (CoLoR-Filter's prior and conditional models) are charged for their words but add no
exposure: what they learn reaches the model only as a choice of documents.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from thrifty.atomic import write_text_atomic

# the selection rules lived here first; callers still import them from this module
from thrifty.data.selection import (
    proportional_shares,
    select_prefix,
    select_sample,
    split_valid,
)
from thrifty.errors import UserError

__all__ = [
    "LEDGER_FILE",
    "SELECTIONS",
    "Ledger",
    "proportional_shares",
    "select_prefix",
    "select_sample",
    "split_valid",
]

LEDGER_FILE = "ledger.json"
SELECTIONS = ("all", "prefix", "sample", "color_filter")
# words_seen accumulates floats step by step; exactly 10 epochs must not read as 10.0000001
_EPOCH_SLACK = 1e-9
_SHOWN_SOURCES = 25  # source lines the summary prints before "... and N more"


@dataclass
class Ledger:
    """Allowed, prepared and seen words, with fingerprints of everything that produced them."""

    budget_words: int | None = None
    selection: str = "all"
    seed: int = 0
    # one dict per file: {"path", "sha256", "words_total", "words_used"}
    sources: list[dict[str, Any]] = field(default_factory=list)
    prepared_words: dict[str, int] = field(default_factory=lambda: {"train": 0, "valid": 0})
    # {"trained_on_words", "sha256", "vocab_size", "sources": [{"path", "sha256", "words"}],
    #  "text_sha256"} (+ "path" when reused from elsewhere, "stated" when the user gave the words)
    tokenizer: dict[str, Any] = field(
        default_factory=lambda: {"trained_on_words": 0, "sha256": "", "vocab_size": 0}
    )
    # {"name", "words"} (+ "texts": sha256 of texts whose every word is among ``words``;
    #  + "noncompliant": why the model breaks the rules, e.g. an external generator whose
    #  training words are only declared)
    aux_models: list[dict[str, Any]] = field(default_factory=list)
    # model-generated words among the prepared training words (distillation): not charged,
    # because the model that wrote them is charged as an aux model (BabyLM rules)
    synthetic_words: int = 0
    # training words derived from charged words by a fixed rule (ObscuraCoder's obfuscated
    # twins), per rule: not charged, since every word they come from is; their tokens are seen
    derived_words: dict[str, int] = field(default_factory=dict)
    # words counted twice in prepared + aux_models (an aux model re-reading the prepared text or
    # another aux model's words, e.g. CoLoR-Filter's scorers): subtracted, so each distinct word
    # is charged once while every model's reading stays on record
    overlap_words: int = 0
    # how a selection was made, for the audit (CoLoR-Filter: tau, pool, target, selected words)
    details: dict[str, Any] = field(default_factory=dict)
    words_seen: float = 0.0
    max_epochs: float = 10
    # sha256 of texts whose every word is charged as prepared words: the training split as
    # prepared (a distillation mix keeps its real part's); see the module docstring
    texts: list[str] = field(default_factory=list)
    # sha256 of the validation split as prepared, so a run continuing a model that read it (a
    # mixture upcycled from specialists trained on this data) can prove it already charged
    valid_texts: list[str] = field(default_factory=list)
    # passes over words besides the model's own: {"name", "words", "passes", "sources"}
    exposure: list[dict[str, Any]] = field(default_factory=list)
    # what the budget and every count above are in: words for text (whitespace-separated, the
    # BabyLM way); images, pairs or transitions for datasets of other modalities
    unit: str = "words"
    # the online phase of a reinforcement-learning run, in its own unit: {"env", "budget",
    # "used"} environment steps (PPO's interactions; evaluation episodes are not charged)
    env_steps: dict[str, Any] = field(default_factory=dict)

    def charge_tokens(self, n_tokens: int, words_per_token: float) -> None:
        """Charge the words behind ``n_tokens`` tokens the trained model has just seen."""
        self.words_seen += n_tokens * words_per_token

    def charge_aux_model(
        self,
        name: str,
        words: int,
        texts: list[str] | None = None,
        noncompliant: str | None = None,
    ) -> None:
        """Charge words read by an auxiliary model (teacher, data selector, augmenter);
        ``texts``: sha256 of texts whose every word is among these ``words``; ``noncompliant``:
        why this model breaks the BabyLM rules whatever its words (the audit fails on it)."""
        entry = next((e for e in self.aux_models if e["name"] == name), None)
        if entry is None:
            entry = {"name": name, "words": 0}
            self.aux_models.append(entry)
        entry["words"] += int(words)
        if texts:
            entry["texts"] = sorted({*entry.get("texts", []), *texts})
        if noncompliant:
            entry["noncompliant"] = noncompliant

    @property
    def train_words(self) -> int:
        return int(self.prepared_words.get("train", 0))

    @property
    def epochs(self) -> float:
        """Passes over the prepared training words so far."""
        return self.words_seen / self.train_words if self.train_words else 0.0

    def tokenizer_words(self) -> int:
        """The tokenizer's training words that nothing else in this ledger charges."""
        tok = self.tokenizer
        if "path" not in tok:  # trained here, on the prepared training split
            return 0
        read = {*self.texts, *(t for m in self.aux_models for t in m.get("texts", []))}
        if tok.get("text_sha256") and tok["text_sha256"] in read:
            return 0
        return int(tok.get("trained_on_words", 0))

    def data_key(self) -> str:
        """What identifies the data this ledger's run was prepared from (not what it has seen
        since): two ledgers with equal keys hold the same prepared words."""
        keys = ("budget_words", "selection", "seed", "sources", "prepared_words", "tokenizer")
        return json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True, default=str)

    def known_texts(self) -> list[str]:
        """sha256 of every text whose words this ledger charges, for a ledger that charges this
        one whole (a continuation charging its start model)."""
        found = {*self.texts, *self.valid_texts}
        found.update(t for m in self.aux_models for t in m.get("texts", []))
        if self.tokenizer.get("text_sha256"):
            found.add(self.tokenizer["text_sha256"])
        return sorted(found)

    def charged_words(self) -> int:
        """Distinct words charged to the budget: prepared text, what aux models read, and the
        tokenizer's training words where they are not among those (module docstring).

        Synthetic words are prepared but not charged (their generator is, as an aux model), nor
        are derived words (the words they are derived from are).
        """
        prepared = sum(int(v) for v in self.prepared_words.values()) - int(self.synthetic_words)
        prepared -= sum(int(v) for v in self.derived_words.values())
        aux = sum(int(m["words"]) for m in self.aux_models)
        return prepared + aux + self.tokenizer_words() - int(self.overlap_words)

    def word_sets(self) -> list[dict[str, Any]]:
        """The model's own training words with its passes, then the ``exposure`` entries."""
        own = {
            "name": "training data",
            "words": self.train_words,
            "passes": self.epochs,
            "sources": sorted({s["sha256"] for s in self.sources if s.get("sha256")}),
        }
        return [own, *self.exposure]

    def passed_on(self, prefix: str) -> list[dict[str, Any]]:
        """This ledger's word sets as ``exposure`` entries of a model that learns from this one
        (its continuation, or a student of its outputs), named ``prefix: ...``."""
        return [
            {**copy.deepcopy(s), "name": f"{prefix}: {s['name']}"}
            for s in self.word_sets()
            if s["passes"] > 0
        ]

    def max_passes(self) -> tuple[float, list[str]]:
        """The most passes over any word, bounded above (module docstring), and the word sets
        that add up to it."""
        sets = [s for s in self.word_sets() if s["passes"] > 0]
        best: tuple[float, list[str]] = (0.0, [])
        for s in sets:
            together = [o for o in sets if o is s or _share_files(s, o)]
            passes = sum(float(o["passes"]) for o in together)
            if passes > best[0]:
                best = (passes, [o["name"] for o in together])
        return best

    def violations(self) -> list[str]:
        """Broken rules, one line each; empty when the run is within the rules."""
        found = []
        charged = self.charged_words()
        if self.budget_words is not None and charged > self.budget_words:
            found.append(
                f"charged {self.unit} {charged:,} exceed the budget of {self.budget_words:,} "
                f"{self.unit}"
            )
        for m in self.aux_models:
            if m.get("noncompliant"):
                found.append(f"auxiliary model {m['name']}: {m['noncompliant']}")
        passes, names = self.max_passes()
        if passes > self.max_epochs * (1 + _EPOCH_SLACK):
            where = f" (passes over the same words: {' + '.join(names)})" if len(names) > 1 else ""
            found.append(f"{passes:.3f} epochs exceed the maximum of {self.max_epochs:g}{where}")
        online = self.env_steps
        if online.get("budget") is not None and online["used"] > online["budget"]:
            found.append(
                f"{online['used']:,} environment steps exceed the budget of {online['budget']:,}"
            )
        return found

    def summary_lines(self) -> list[str]:
        """A human-readable account, one fact per line."""
        u = self.unit
        budget = "none" if self.budget_words is None else f"{self.budget_words:,} {u}"
        lines = [f"budget: {budget} (selection {self.selection}, seed {self.seed})"]
        for key, value in self.details.items():
            number = isinstance(value, int) and not isinstance(value, bool)
            lines.append(f"  {key}: {value:,}" if number else f"  {key}: {value}")
        train, valid = self.train_words, int(self.prepared_words.get("valid", 0))
        lines.append(
            f"prepared: {train + valid:,} {u} ({train:,} train, {valid:,} valid) "
            f"from {len(self.sources)} source file(s)"
        )
        used = [f"{s['words_used']:,} of {s['words_total']:,} {u}" for s in self.sources]
        lines += _source_lines([(s["path"], s["sha256"], u) for s, u in zip(self.sources, used)])
        if self.unit == "words" or self.tokenizer.get("sha256"):  # images have no tokenizer
            lines += self._tokenizer_lines()
        for m in self.aux_models:
            note = f" (not BabyLM-compliant: {m['noncompliant']})" if m.get("noncompliant") else ""
            lines.append(f"auxiliary model {m['name']}: {m['words']:,} {u}{note}")
        if self.synthetic_words:
            lines.append(
                f"synthetic: {self.synthetic_words:,} model-generated training words "
                "(not charged; their generator is)"
            )
        for rule, words in self.derived_words.items():
            lines.append(
                f"derived: {words:,} training words made by {rule} from charged words "
                "(not charged; the words they come from are)"
            )
        if self.overlap_words:
            lines.append(
                f"overlap: {self.overlap_words:,} words counted twice above (read by several "
                "models, or selected after being read); charged once"
            )
        charged = self.charged_words()
        share = f" ({charged / self.budget_words:.1%} of budget)" if self.budget_words else ""
        lines.append(f"charged: {charged:,} {u}{share}")
        lines.append(
            f"seen by the model: {self.words_seen:,.0f} {u} = {self.epochs:.2f} epochs "
            f"(max {self.max_epochs:g})"
        )
        for e in self.exposure:
            lines.append(
                f"exposure {e['name']}: {int(e['words']):,} {u} x {float(e['passes']):.2f} passes"
            )
        passes, names = self.max_passes()
        lines.append(
            f"most passes over any {'word' if u == 'words' else 'item'}: {passes:.2f} "
            f"({' + '.join(names) or 'none'}; "
            f"max {self.max_epochs:g})"
        )
        if self.env_steps:
            online = self.env_steps
            budget = "none" if online.get("budget") is None else f"{online['budget']:,}"
            lines.append(
                f"environment steps in {online.get('env', '?')}: {online['used']:,} "
                f"(budget {budget})"
            )
        return lines

    def _tokenizer_lines(self) -> list[str]:
        tok = self.tokenizer
        words = int(tok.get("trained_on_words", 0))
        head = (
            f"tokenizer: vocab {tok.get('vocab_size', 0):,}, sha256 {str(tok.get('sha256'))[:12]}"
        )
        if "path" not in tok:
            return [f"{head}, trained on {words:,} words of the prepared training split"]
        origin = (
            "stated by the user" if tok.get("stated") else f"{len(tok.get('sources', []))} file(s)"
        )
        lines = [f"{head}, from {tok['path']}: trained on {words:,} words ({origin})"]
        lines += _source_lines(
            [(s["path"], s["sha256"], f"{s['words']:,} words") for s in tok.get("sources", [])]
        )
        charged = self.tokenizer_words()
        lines.append(
            f"  charged: {charged:,} words"
            if charged or not words
            else f"  not charged: it read text already charged here "
            f"(sha256 {str(tok.get('text_sha256'))[:12]})"
        )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The ledger as JSON data; ``unit`` only when it is not words, so text ledgers read
        exactly as they did before other modalities existed."""
        data = asdict(self)
        if data["unit"] == "words":
            del data["unit"]
        if not data["env_steps"]:  # only reinforcement-learning runs have an online phase
            del data["env_steps"]
        if not data["valid_texts"]:  # only text prepared since it was recorded has it
            del data["valid_texts"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "ledger") -> Ledger:
        """Inverse of ``to_dict``; unknown keys are errors so typos don't pass silently. Keys
        added since the first format (``texts``, ``valid_texts``, ``exposure``,
        ``derived_words``) default to empty."""
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


def _share_files(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two word sets may hold the same words: a common source file, or unknown files."""
    if not a.get("sources") or not b.get("sources"):
        return True  # in doubt, the passes add up
    return bool(set(a["sources"]) & set(b["sources"]))


def _source_lines(rows: list[tuple[str, str, str]]) -> list[str]:
    """``  path: what, sha256 abc`` per source, the tail summarised past a screenful."""
    shown = rows if len(rows) <= _SHOWN_SOURCES + 5 else rows[:_SHOWN_SOURCES]
    lines = [f"  {path}: {what}, sha256 {str(sha)[:12]}" for path, sha, what in shown]
    if len(shown) < len(rows):
        lines.append(f"  ... and {len(rows) - len(shown)} more source files")
    return lines
