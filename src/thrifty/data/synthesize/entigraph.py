"""EntiGraph synthetic data (Yang et al. 2025, arXiv 2409.07431; papers/entigraph.md §2-3):
extract each source document's entities, then generate texts about single entities, every pair
and a shuffle of the triples, each with the whole document in context, until a word budget.

Order of the tasks (a pure function of the documents, their entities and ``seed``, so that a
resumed synthesis continues the same sequence): every document's single entities, then every
document's pairs, then the triples, each document's shuffled with ``(seed, doc)``, dealt round
robin across documents so that a budget cut leaves every document about as many. ``rephrase``
(the card's Rephrase baseline) instead rewrites whole documents, pass after pass. ``words``
stops the synthesis at the first text that reaches it (no text is cut); without it, every
task runs (rephrase: one pass).

Entities come from the generator (``extract``) or from a fixed rule, :func:`rule_entities`
(capitalized spans less leading function words), which is what the template generator and small
thrifty runs use: neither writes JSON reliably.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.data.corpus import count_words
from thrifty.data.synthesize.writer import PartialOutput
from thrifty.errors import UserError

METHODS = ("entigraph", "rephrase")
_LEADING = {"The", "A", "An", "In", "It", "He", "She", "They", "This", "That", "What", "When"}
_SPAN = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")


@dataclass(frozen=True)
class Task:
    doc: int
    kind: str  # entity | pair | triple | rephrase
    entities: tuple[str, ...] = ()


def read_documents(source: str | Path) -> tuple[list[dict[str, str]], str, int]:
    """(documents ``{"id", "text"}``, sha256 of the file, words) of a ``.jsonl`` file (a
    ``text`` field, optional ``id``), a text file (one document per line), or a folder made by
    ``thrifty synthesize-world`` (its documents.jsonl)."""
    path = Path(source)
    if path.is_dir():
        path = path / "documents.jsonl"
    if not path.is_file():
        raise UserError(f"{source}: no such file (a .jsonl or text file of documents)")
    raw = path.read_bytes()
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    docs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                raise UserError(f"{path}:{n}: missing or ill-typed field 'text'")
            docs.append({"id": str(rec.get("id", f"line{n}")), "text": rec["text"]})
        else:
            docs.append({"id": f"line{n}", "text": line.strip()})
    if not docs:
        raise UserError(f"{path}: no documents")
    words = sum(count_words(d["text"]) for d in docs)
    return docs, hashlib.sha256(raw).hexdigest(), words


def rule_entities(text: str, limit: int) -> list[str]:
    """Capitalized spans in order of first appearance, leading function words dropped."""
    found: list[str] = []
    for span in _SPAN.findall(text):
        words = span.split()
        while words and words[0] in _LEADING:
            words = words[1:]
        name = " ".join(words)
        if name and name not in found:
            found.append(name)
    return found[:limit]


def _round_robin(groups: list[list[Task]]) -> Iterator[Task]:
    for layer in itertools.zip_longest(*groups):
        yield from (t for t in layer if t is not None)


def plan(method: str, entities: list[list[str]], seed: int) -> Iterator[Task]:
    """The tasks in synthesis order (module docstring); rephrase passes never end."""
    if method == "rephrase":
        for _ in itertools.count():
            yield from (Task(d, "rephrase") for d in range(len(entities)))
    for d, ents in enumerate(entities):
        yield from (Task(d, "entity", (e,)) for e in ents)
    yield from _round_robin(
        [[Task(d, "pair", p) for p in itertools.combinations(e, 2)] for d, e in enumerate(entities)]
    )
    triples = []
    for d, ents in enumerate(entities):
        combos = [Task(d, "triple", t) for t in itertools.combinations(ents, 3)]
        random.Random(f"{seed}:{d}").shuffle(combos)
        triples.append(combos)
    yield from _round_robin(triples)


def task_seed(seed: int, index: int) -> int:
    """The sampling seed of task ``index``: fixed, so a resumed synthesis samples the same."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "little")


def generate(
    docs: list[dict[str, str]],
    generator: Any,
    partial: PartialOutput,
    *,
    method: str,
    words: int | None,
    seed: int,
    entities_from: str,
    max_entities: int,
    log=None,
) -> None:
    """Run the synthesis into ``partial``, continuing where it stopped."""
    if method not in METHODS:
        raise UserError(f"--method {method!r}: choose from {', '.join(METHODS)}")
    entities = []
    for d, doc in enumerate(docs):
        found = partial.entities(d)
        if found is None:
            if entities_from == "generator":
                found = generator.extract(doc["text"], task_seed(seed, -1 - d))[:max_entities]
            else:
                found = rule_entities(doc["text"], max_entities)
            partial.set_entities(d, found)
        entities.append(found)
    limit = None if words is not None or method == "entigraph" else len(docs)
    tasks = itertools.islice(plan(method, entities, seed), limit)
    pass_words, resume_at = 0, partial.records
    for index, task in enumerate(tasks):
        if words is not None and partial.words >= words:
            break
        if method == "rephrase" and index and index % len(docs) == 0:  # a pass ends
            if index - len(docs) >= resume_at and partial.words == pass_words:
                raise UserError(f"generator {generator.spec} wrote no words in a whole pass")
            pass_words = partial.words
        if index < partial.records:
            continue  # done before the resume
        doc = docs[task.doc]
        text = generator.relate(task.kind, doc["text"], task.entities, task_seed(seed, index))
        record = {"text": text, "doc": doc["id"], "kind": task.kind, "entities": task.entities}
        partial.append(record, count_words(text))
        if log is not None and (index + 1) % 500 == 0:
            log(f"{index + 1:,} texts, {partial.words:,} words")
