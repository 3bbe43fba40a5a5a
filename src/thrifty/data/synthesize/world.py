"""The small-scale world of the EntiGraph card (papers/entigraph.md §5; Yang et al. 2025, arXiv
2409.07431): invented entities and facts, each fact stated once, plus closed-book questions.

:func:`make_world` is deterministic in ``seed``. Every document holds 3-4 people, 2 places and
1-2 things (6-8 entities, names invented and unique in the world) and 7-11 facts over five
relations, one sentence per fact in the *raw* template, in shuffled order. Three one-hop
compositions (sibling then lives_in, teacher then lives_in, owns then made_in) are true of the
world but never stated: their questions ("Zorb's sibling lives in") appear in no document.

Questions (:func:`questions`): for every fact and every composition, a cloze prompt and a
multiple-choice question, each with the answer and three distractors of the same type drawn from
the whole world (fewer in a world too small for three); records carry ``kind`` (cloze | mc),
``composed`` and the source ``doc`` id, the format :mod:`thrifty.eval.closed_book_qa` reads.

The template generator (:mod:`thrifty.data.synthesize.generators`) restates facts through
``Relation.templates``; the raw template is one of them, so no arm is barred from the cloze
wording, and none of them is the multiple-choice question form.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Relation:
    types: tuple[str, str]
    templates: tuple[str, ...]
    """Statements of the fact; the first is the raw form the source documents use."""
    cloze: str
    question: str


RELATIONS: dict[str, Relation] = {
    "lives_in": Relation(
        ("person", "place"),
        ("{a} lives in {b}.", "{b} is where {a} lives.", "{a} has a home in {b}.",
         "In {b} one finds {a} at home."),
        "{a} lives in", "Where does {a} live?",
    ),
    "sibling": Relation(
        ("person", "person"),
        ("{a}'s sibling is {b}.", "{b} is the sibling of {a}.", "{a} and {b} are siblings.",
         "{a} grew up with {b}, a sibling."),
        "{a}'s sibling is", "Who is the sibling of {a}?",
    ),
    "taught_by": Relation(
        ("person", "person"),
        ("{a} was taught by {b}.", "{b} taught {a}.", "{b} was the teacher of {a}.",
         "{a} learned from {b}."),
        "{a} was taught by", "Who taught {a}?",
    ),
    "owns": Relation(
        ("person", "thing"),
        ("{a} owns the {b}.", "The {b} belongs to {a}.", "{a} is the owner of the {b}.",
         "{a} keeps the {b}."),
        "{a} owns the", "What does {a} own?",
    ),
    "made_in": Relation(
        ("thing", "place"),
        ("The {a} was made in {b}.", "{b} is where the {a} was made.", "The {a} comes from {b}.",
         "Craftsmen in {b} made the {a}."),
        "The {a} was made in", "Where was the {a} made?",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Composition:
    first: str
    second: str
    templates: tuple[str, ...]
    cloze: str
    question: str


COMPOSITIONS: tuple[Composition, ...] = (
    Composition("sibling", "lives_in",
                ("{a}'s sibling lives in {c}.", "The sibling of {a} lives in {c}."),
                "{a}'s sibling lives in", "Where does the sibling of {a} live?"),
    Composition("taught_by", "lives_in",
                ("{a}'s teacher lives in {c}.", "The teacher of {a} lives in {c}."),
                "{a}'s teacher lives in", "Where does the teacher of {a} live?"),
    Composition("owns", "made_in",
                ("The thing {a} owns was made in {c}.", "What {a} owns was made in {c}."),
                "The thing {a} owns was made in", "Where was the thing {a} owns made?"),
)  # fmt: skip

_ONSETS = "b d f g k l m n p r s t v z br dr gl kr pl sk tr vr".split()
_VOWELS = "a e i o u ae ou".split()
_CODAS = ["", "", "n", "r", "l", "sk", "th", "m"]


@dataclass(frozen=True)
class Fact:
    relation: str
    a: str
    b: str

    def statement(self, template: int = 0) -> str:
        return RELATIONS[self.relation].templates[template].format(a=self.a, b=self.b)


def raw_pattern(relation: str) -> re.Pattern[str]:
    """The raw template as a regex with groups ``a`` and ``b`` (one capitalized word each)."""
    text = re.escape(RELATIONS[relation].templates[0])
    text = text.replace(r"\{a\}", r"(?P<a>[A-Z][a-z]+)").replace(r"\{b\}", r"(?P<b>[A-Z][a-z]+)")
    return re.compile(f"^{text}$")


def compose(facts: list[Fact]) -> list[tuple[Composition, str, str, str]]:
    """(composition, a, b, c) for every one-hop chain a -first-> b -second-> c in ``facts``."""
    out = []
    for comp in COMPOSITIONS:
        for f in facts:
            if f.relation != comp.first:
                continue
            for g in facts:
                if g.relation == comp.second and g.a == f.b:
                    out.append((comp, f.a, f.b, g.b))
    return out


def _names(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    out = []
    while len(out) < n:
        parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(1, 2))]
        name = ("".join(parts) + rng.choice(_CODAS)).capitalize()
        if len(name) >= 4 and name not in taken:
            taken.add(name)
            out.append(name)
    return out


def _doc_facts(rng: random.Random, taken: set[str]) -> tuple[dict[str, list[str]], list[Fact]]:
    people = _names(rng, rng.randint(3, 4), taken)
    places = _names(rng, 2, taken)
    things = _names(rng, rng.randint(1, 2), taken)
    homes = [*places, *(rng.choice(places) for _ in people[2:])]  # every place is named
    rng.shuffle(homes)
    facts = [Fact("lives_in", p, home) for p, home in zip(people, homes)]
    a, b, *rest = people
    facts.append(Fact("sibling", a, b))
    for student in rest:  # taught by someone other than themselves
        facts.append(Fact("taught_by", student, rng.choice([a, b])))
    for t in things:
        facts.append(Fact("owns", rng.choice(people), t))
        facts.append(Fact("made_in", t, rng.choice(places)))
    return {"person": people, "place": places, "thing": things}, facts


def make_world(seed: int = 0, docs: int = 30) -> dict[str, Any]:
    """``{"documents": [{"id", "text"}], "facts": [...], "entities": {...}}``, fixed by seed."""
    rng = random.Random(seed)
    taken: set[str] = set()
    documents, all_facts, entities = [], [], {"person": [], "place": [], "thing": []}
    for d in range(docs):
        ents, facts = _doc_facts(rng, taken)
        for kind, names in ents.items():
            entities[kind] += names
        order = facts[:]
        rng.shuffle(order)
        doc_id = f"doc{d:03d}"
        documents.append({"id": doc_id, "text": " ".join(f.statement() for f in order)})
        all_facts += [{"doc": doc_id, "relation": f.relation, "a": f.a, "b": f.b} for f in facts]
    return {"seed": seed, "documents": documents, "facts": all_facts, "entities": entities}


def questions(world: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """Cloze and multiple-choice items for every stated fact and every one-hop composition."""
    rng = random.Random(seed)
    by_doc: dict[str, list[Fact]] = {}
    for f in world["facts"]:
        by_doc.setdefault(f["doc"], []).append(Fact(f["relation"], f["a"], f["b"]))
    pools = world["entities"]
    items = []

    def add(doc: str, cloze: str, question: str, answer: str, kind: str, composed: bool) -> None:
        others = [n for n in pools[kind] if n != answer]
        if not others:  # a world too small for a distractor of this type
            return
        wrong = rng.sample(others, min(3, len(others)))
        choices = [answer, *wrong]
        rng.shuffle(choices)
        for form, text in (("cloze", cloze), ("mc", question)):
            items.append({"question": text, "answer": answer, "choices": choices, "kind": form,
                          "composed": composed, "doc": doc})  # fmt: skip

    for doc, facts in by_doc.items():
        for f in facts:
            rel = RELATIONS[f.relation]
            add(doc, rel.cloze.format(a=f.a), rel.question.format(a=f.a), f.b, rel.types[1], False)
        for comp, a, _, c in compose(facts):
            kind = RELATIONS[comp.second].types[1]
            add(doc, comp.cloze.format(a=a), comp.question.format(a=a), c, kind, True)
    return items


QA_FOLDER = "closed_book_qa"


def write_world(out, seed: int = 0, docs: int = 30, overwrite: bool = False) -> dict[str, Any]:
    """Write ``out/documents.jsonl`` (the source corpus), ``out/closed_book_qa/qa.jsonl`` (the
    questions; ``thrifty eval RUN --task closed_book_qa --data-root OUT``) and ``out/world.json``
    (facts and entities), atomically. Returns the world with its questions."""
    import json
    from pathlib import Path

    from thrifty.atomic import new_folder
    from thrifty.errors import UserError

    out = Path(out)
    if docs < 1:
        raise UserError(f"--docs must be positive, got {docs}")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    world = make_world(seed, docs)
    items = questions(world, seed)

    def lines(rows):
        return "".join(json.dumps(r) + "\n" for r in rows)

    with new_folder(out) as tmp:
        (tmp / "documents.jsonl").write_text(lines(world["documents"]), encoding="utf-8")
        (tmp / QA_FOLDER).mkdir()
        (tmp / QA_FOLDER / "qa.jsonl").write_text(lines(items), encoding="utf-8")
        (tmp / "world.json").write_text(json.dumps(world, indent=1) + "\n", encoding="utf-8")
    return {**world, "questions": items}
