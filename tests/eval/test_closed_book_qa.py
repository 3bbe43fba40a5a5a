"""closed_book_qa: cloze and multiple-choice scoring with a stub scorer, ties wrong, subtasks,
the world's questions, and bad records named by file and line."""

from __future__ import annotations

import json

import pytest

from thrifty.errors import UserError
from thrifty.eval import EVAL_TASKS
from thrifty.eval.closed_book_qa import context
from thrifty.eval.pipeline_layout import read_rows, write_results


class Prefers:
    """Scores a continuation by a rule; records what it was asked."""

    backend, variant = "stub", "original"

    def __init__(self, rule):
        self.rule, self.pairs = rule, []

    def continuations(self, contexts, texts):
        self.pairs += list(zip(contexts, texts, strict=True))
        return [float(self.rule(c, t)) for c, t in zip(contexts, texts, strict=True)]


def item(q, answer, choices, kind="cloze", composed=False):
    return {"question": q, "answer": answer, "choices": choices, "kind": kind,
            "composed": composed, "doc": "d0"}  # fmt: skip


def write(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_scores_choices_as_continuations_and_ties_are_wrong(tmp_path):
    folder = write(tmp_path / "qa", [
        item("Zorb lives in", "Quil", ["Vask", "Quil", "Brom"]),
        item("Where does Zorb live?", "Quil", ["Quil", "Vask"], kind="mc"),
        item("Zorb's sibling lives in", "Brom", ["Brom", "Vask"], composed=True),
        item("Mava lives in", "Tor", ["Tor", "Sul"]),  # a tie: wrong
    ])  # fmt: skip
    scorer = Prefers(lambda c, t: {" Quil": 2, " Brom": 1, " Tor": 0, " Sul": 0}.get(t, -1))
    items = tmp_path / "items.jsonl"
    result = EVAL_TASKS.build({"name": "closed_book_qa"}).evaluate(scorer, folder, items_path=items)
    assert ("Question: Where does Zorb live?\nAnswer:", " Quil") in scorer.pairs
    assert ("Zorb lives in", " Quil") in scorer.pairs
    assert result["subtasks"] == {
        "cloze_composed": {"score": 1.0, "n": 1},
        "cloze_direct": {"score": 0.5, "n": 2},
        "mc_direct": {"score": 1.0, "n": 1},
    }
    assert result["score"] == pytest.approx(2.5 / 3) and result["item_accuracy"] == 0.75
    rows = read_rows(items)
    assert [r["correct"] for r in rows] == [True, True, False, True]  # by subtask, then file
    written = write_results(tmp_path / "layout", "closed_book_qa", result, rows)
    assert {p.name for p in written} == {"best_temperature_report.txt", "predictions.json"}


def test_the_worlds_questions_are_read(tmp_path):
    from thrifty.data.synthesize.world import write_world

    world = write_world(tmp_path / "w", docs=3)
    task = EVAL_TASKS.build({"name": "closed_book_qa"})
    right = {(context(q), " " + q["answer"]) for q in world["questions"]}
    result = task.evaluate(Prefers(lambda c, t: (c, t) in right), tmp_path / "w" / "closed_book_qa")
    assert result["score"] == 1.0 and result["n_items"] == len(world["questions"])
    assert set(result["subtasks"]) == {"cloze_direct", "cloze_composed", "mc_direct", "mc_composed"}


@pytest.mark.parametrize(
    "record, message",
    [
        ({"question": "Zorb lives in", "answer": "Quil", "kind": "cloze", "composed": False},
         "missing or ill-typed field 'choices'"),
        (item("Zorb lives in", "Quil", ["Vask", "Brom"]), "'answer' 'Quil' is not among"),
        (item("Zorb lives in", "Quil", ["Quil", "Vask"], kind="open"), "'kind' must be cloze"),
        ({**item("Zorb lives in", "Quil", ["Quil", "Vask"]), "composed": "no"},
         "missing or ill-typed field 'composed'"),
    ],
)  # fmt: skip
def test_bad_records_name_the_file_and_line(tmp_path, record, message):
    folder = write(tmp_path / "qa", [item("Zorb lives in", "Quil", ["Quil", "Vask"]), record])
    with pytest.raises(UserError, match=rf"qa.jsonl:2: {message}"):
        EVAL_TASKS.build({"name": "closed_book_qa"}).evaluate(Prefers(len), folder)
