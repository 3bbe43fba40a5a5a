"""EntiGraph synthesis: the small world's invariants, the task order and budget stop, grounded
template texts, resumable output, the ledger, and the thrifty-run generator."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from thrifty.data.budget import Ledger
from thrifty.data.synthesize import synthesize
from thrifty.data.synthesize.entigraph import plan, rule_entities
from thrifty.data.synthesize.generators import Template
from thrifty.data.synthesize.world import (
    COMPOSITIONS,
    RELATIONS,
    make_world,
    questions,
    write_world,
)
from thrifty.errors import UserError


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "world"
    write_world(out, seed=0, docs=6)
    return out


def test_world_is_seeded_and_states_each_fact_once():
    world = make_world(seed=3, docs=30)
    assert world == make_world(seed=3, docs=30) and world != make_world(seed=4, docs=30)
    corpus = " ".join(d["text"] for d in world["documents"])
    for doc in world["documents"]:
        facts = [f for f in world["facts"] if f["doc"] == doc["id"]]
        assert 7 <= len(facts) <= 11
        assert 6 <= len(rule_entities(doc["text"], 99)) <= 8
    for f in world["facts"]:
        stated = RELATIONS[f["relation"]].templates[0].format(a=f["a"], b=f["b"])
        assert corpus.count(stated) == 1, stated
    names = [n for kind in world["entities"].values() for n in kind]
    assert len(names) == len(set(names))  # invented and unique, so no fact conflicts


def test_questions_cover_every_fact_and_composed_ones_never_appear_verbatim():
    world = make_world(seed=0, docs=30)
    items = questions(world)
    corpus = " ".join(d["text"] for d in world["documents"])
    direct = [q for q in items if not q["composed"]]
    composed = [q for q in items if q["composed"]]
    assert len(direct) == 2 * len(world["facts"])  # a cloze and a multiple choice each
    assert composed and {q["kind"] for q in items} == {"cloze", "mc"}
    for q in items:
        assert q["answer"] in q["choices"] and len(set(q["choices"])) == 4
    for q in composed:
        assert q["question"] not in corpus
        assert f"{q['question']} {q['answer']}" not in corpus
    for q in direct:
        if q["kind"] == "cloze":
            assert f"{q['question']} {q['answer']}" in corpus  # stated, in the raw template


def test_plan_enumerates_entities_pairs_and_shuffled_triples_round_robin():
    ents = [list("abcd"), list("xyz")]
    tasks = list(plan("entigraph", ents, seed=0))
    kinds = [t.kind for t in tasks]
    assert kinds == ["entity"] * 7 + ["pair"] * 9 + ["triple"] * 5
    assert {t.entities for t in tasks if t.kind == "pair" and t.doc == 0} == set(
        itertools.combinations("abcd", 2)
    )
    assert [t.doc for t in tasks if t.kind == "pair"][:6] == [0, 1, 0, 1, 0, 1]
    triples = [t.entities for t in tasks if t.kind == "triple" and t.doc == 0]
    assert sorted(triples) == list(itertools.combinations("abcd", 3))
    other = [t.entities for t in plan("entigraph", ents, seed=1) if t.kind == "triple"]
    assert tasks == list(plan("entigraph", ents, seed=0))
    assert [t.entities for t in tasks if t.kind == "triple"] != other
    first = list(itertools.islice(plan("rephrase", ents, 0), 4))
    assert [(t.doc, t.kind) for t in first] == [(0, "rephrase"), (1, "rephrase")] * 2


def test_template_texts_are_grounded_in_their_document():
    world = make_world(seed=0, docs=5)
    by_doc = {d["id"]: d["text"] for d in world["documents"]}
    gen = Template()
    for doc_id, text in by_doc.items():
        ents = rule_entities(text, 16)
        truth = {(f["relation"], f["a"], f["b"]) for f in world["facts"] if f["doc"] == doc_id}
        for pair in itertools.combinations(ents, 2):
            out = gen.relate("pair", text, pair, seed=1)
            assert out == gen.relate("pair", text, pair, seed=1)  # deterministic in the seed
            assert set(re.findall(r"[A-Z][a-z]+", out)) - {"The", "In", "What", "Craftsmen"} <= set(
                ents
            )
            for rel, a, b in truth:  # every fact about the pair is restated
                if {a, b} & set(pair):
                    assert any(t.format(a=a, b=b) in out for t in RELATIONS[rel].templates), (
                        rel,
                        a,
                        b,
                    )
        rephrased = gen.relate("rephrase", text, (), seed=2)
        assert len(rephrased.split(". ")) == len(text.split(". "))


def test_entigraph_states_compositions_the_source_never_does(world_dir, tmp_path):
    out = tmp_path / "syn"
    synthesize(world_dir, out, vocab_size=300, valid_fraction=0.0)
    corpus = "\n".join(json.loads(x)["text"] for x in (out / "synthetic.jsonl").open())
    qa = [json.loads(x) for x in (world_dir / "closed_book_qa" / "qa.jsonl").open()]
    composed = [q for q in qa if q["composed"] and q["kind"] == "cloze"]
    assert composed
    assert all(f"{q['question']} {q['answer']}" in corpus for q in composed)
    assert {c.templates[0].split()[1] for c in COMPOSITIONS}  # the card's one-hop kinds exist


def test_ledger_records_synthetic_words_and_charges_source_and_generator(world_dir, tmp_path):
    manifest = synthesize(world_dir, tmp_path / "syn", words=2000, vocab_size=300)
    ledger = Ledger.from_dict(manifest["ledger"])
    source = manifest["synthesize"]["source"]
    assert ledger.synthetic_words == sum(ledger.prepared_words.values()) >= 2000
    assert ledger.charged_words() == source["words"] > 0  # the template rule reads, learns nothing
    names = [m["name"] for m in ledger.aux_models]
    assert any(n.startswith("EntiGraph source documents") for n in names)
    assert any(n.startswith("EntiGraph generator template") for n in names)
    assert ledger.violations() == []
    # the budget stops at the first text that reaches it: one text fewer stays below
    records = [json.loads(x) for x in (tmp_path / "syn" / "synthetic.jsonl").open()]
    assert sum(len(r["text"].split()) for r in records[:-1]) < 2000


def test_interrupted_synthesis_leaves_a_partial_folder_and_resumes_to_the_same_data(
    world_dir, tmp_path, monkeypatch
):
    straight = tmp_path / "straight"
    synthesize(world_dir, straight, words=3000, seed=5, vocab_size=300)
    real = Template.relate
    calls = {"n": 0}

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 20:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Template, "relate", dying)
    out = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        synthesize(world_dir, out, words=3000, seed=5, vocab_size=300)
    partial = tmp_path / "broken.partial"
    assert not out.exists() and partial.is_dir()
    assert json.loads((partial / "progress.json").read_text())["records"] == 19
    with open(partial / "texts.jsonl", "a") as f:
        f.write('{"text": "a torn li')  # a line the crash cut: not on record, so dropped
    with pytest.raises(UserError, match=r"broken.partial holds an unfinished.*\(seed\)"):
        synthesize(world_dir, out, words=3000, seed=6, vocab_size=300)
    monkeypatch.setattr(Template, "relate", real)
    synthesize(world_dir, out, words=3000, seed=5, vocab_size=300)
    assert not partial.exists()
    for name in ("synthetic.jsonl", "train.bin", "valid.bin"):
        assert (out / name).read_bytes() == (straight / name).read_bytes()
    with pytest.raises(UserError, match="already exists"):
        synthesize(world_dir, out, words=3000, seed=5, vocab_size=300)


def test_source_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"text": "Zorb lives in Quil."}\n{"id": 2}\n')
    with pytest.raises(UserError, match=r"docs.jsonl:2: missing or ill-typed field 'text'"):
        synthesize(bad, tmp_path / "out")
    with pytest.raises(UserError, match="--method 'entigraf'"):
        synthesize(bad, tmp_path / "out", method="entigraf")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_a_thrifty_run_generates_deterministically_and_is_charged(tmp_path, world_dir, toy):
    run = toy.build_run(tmp_path / "gen").run_dir
    ledger = json.loads((run / "ledger.json").read_text())
    ledger |= {"prepared_words": {"train": 700, "valid": 10}, "words_seen": 1400}
    (run / "ledger.json").write_text(json.dumps(ledger))
    state = run / "checkpoints" / "step_00000001" / "state.json"
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "ledger": ledger}))
    kw = dict(generator=f"run:{run}", words=60, max_new_tokens=6, temperature=0.8,
              vocab_size=300, valid_fraction=0.0)  # fmt: skip
    a = synthesize(world_dir, tmp_path / "a", **kw)
    synthesize(world_dir, tmp_path / "b", **kw)
    assert (tmp_path / "a" / "synthetic.jsonl").read_text() == (
        tmp_path / "b" / "synthetic.jsonl"
    ).read_text()
    led = Ledger.from_dict(a["ledger"])
    entry = next(m for m in led.aux_models if m["name"] == "EntiGraph generator gen")
    assert entry["words"] == 710 and "noncompliant" not in entry
    assert [e["passes"] for e in led.exposure] == [2.0]  # its passes reach the new model


def test_rephrase_passes_until_the_budget_and_stop_on_a_silent_generator(
    world_dir, tmp_path, monkeypatch
):
    manifest = synthesize(world_dir, tmp_path / "r", method="rephrase", words=900, vocab_size=300)
    records = [json.loads(x) for x in (tmp_path / "r" / "synthetic.jsonl").open()]
    assert {r["kind"] for r in records} == {"rephrase"} and len(records) > 6  # passes repeat
    assert manifest["ledger"]["synthetic_words"] >= 900
    monkeypatch.setattr(Template, "relate", lambda self, *args: "")
    with pytest.raises(UserError, match="wrote no words in a whole pass"):
        synthesize(world_dir, tmp_path / "s", method="rephrase", words=900)


@pytest.mark.slow
def test_a_transformers_model_generates_with_its_seed_and_is_charged_as_declared(
    tmp_path, world_dir, toy
):
    from thrifty.cli.main import main

    run = toy.build_run(tmp_path / "gen").run_dir
    assert main(["export", str(run), "--out", str(tmp_path / "hf")]) == 0
    kw = dict(generator=f"hf:{tmp_path / 'hf'}", generator_words=5_000_000, entities="rule",
              words=40, max_new_tokens=5, temperature=0.9, vocab_size=300,
              valid_fraction=0.0)  # fmt: skip
    a = synthesize(world_dir, tmp_path / "a", **kw)
    synthesize(world_dir, tmp_path / "b", **kw)
    texts = [(tmp_path / x / "synthetic.jsonl").read_text() for x in ("a", "b")]
    assert texts[0] == texts[1]  # the task seeds fix the samples
    entry = next(m for m in a["ledger"]["aux_models"] if m["name"].startswith("EntiGraph gen"))
    assert entry["words"] == 5_000_000 and entry["noncompliant"]
