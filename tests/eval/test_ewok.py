"""EWoK: the 2025 pipeline's comparison (Target1 vs Target2 after Context1), the EWoK paper's
(one target under both contexts), ties, per-domain aggregation, and the missing-data error.

The data may not be redistributed, so every test writes invented items in the exact layout of
``ewok_filtered/<domain>.jsonl``."""

from __future__ import annotations

import json
import math

import pytest

from thrifty.errors import UserError
from thrifty.eval import EVAL_TASKS, Scorer, task_folder


class Stub:
    backend, variant = "stub", "original"

    def __init__(self, rule):
        self.rule, self.pairs = rule, []

    def continuations(self, contexts, texts):
        self.pairs += list(zip(contexts, texts, strict=True))
        return [float(self.rule(c, t)) for c, t in zip(contexts, texts, strict=True)]


def record(domain, c1, c2, t1, t2, context_type="direct", context_diff="antonym"):
    return {"Domain": domain, "ConceptA": "near", "ConceptB": "far", "ContextType": context_type,
            "ContextDiff": context_diff, "TargetDiff": "concept swap", "Context1": c1,
            "Context2": c2, "Target1": t1, "Target2": t2}  # fmt: skip


def write(folder, name, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def ewok_dir(tmp_path):
    folder = tmp_path / "babylm_eval" / "full_eval" / "ewok_filtered"
    write(folder, "spatial-relations", [
        record("spatial-relations", "The cup is on the shelf.", "The cup is under the shelf.",
               "The cup is high.", "The cup is very low."),  # T1 shorter: right
        record("spatial-relations", "The cup is under the shelf.", "The cup is on the shelf.",
               "The cup is very low.", "The cup is high.", "indirect"),  # T1 longer: wrong
    ])  # fmt: skip
    write(folder, "social-relations", [
        record("social-relations", "Ana helps Ben.", "Ana ignores Ben.", "Ana is kind.",
               "Ana is rude.", context_diff="negation"),  # same length: a tie, wrong
    ])  # fmt: skip
    return folder


def test_pipeline_comparison_ties_and_domain_mean(ewok_dir, tmp_path):
    stub = Stub(lambda c, t: -len(t))  # prefers the shorter target
    items = tmp_path / "items.jsonl"
    result = EVAL_TASKS.build({"name": "ewok"}).evaluate(stub, ewok_dir, items_path=items)
    assert result["task"] == "ewok" and result["metric"] == "accuracy"
    assert result["comparison"] == "targets"
    assert result["subtasks"] == {"social-relations": {"score": 0.0, "n": 1},
                                  "spatial-relations": {"score": 0.5, "n": 2}}  # fmt: skip
    assert result["score"] == result["macro"] == pytest.approx(0.25)  # mean over domains
    assert result["item_accuracy"] == pytest.approx(1 / 3)
    assert result["context_types"] == {"direct": 0.5, "indirect": 0.0}
    assert result["context_contrasts"] == {"antonym": 0.5, "negation": 0.0}
    assert result["target_contrasts"] == {"concept swap": pytest.approx(1 / 3)}
    # Both targets follow Context1, with the separating space on the target (the pipeline's
    # " " + Target completions); Context2 is never read.
    assert {c for c, _ in stub.pairs} == {"The cup is on the shelf.", "The cup is under the shelf.",
                                          "Ana helps Ben."}  # fmt: skip
    assert all(t.startswith(" ") for _, t in stub.pairs) and len(stub.pairs) == 6
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    assert [r["correct"] for r in rows] == [False, True, False]  # sorted by domain
    assert rows[0]["domain"] == "social-relations" and len(rows[0]["scores"]) == 2


def test_paper_comparison_holds_the_target_fixed(ewok_dir):
    # Each target fits its own context better than the other one, in both mirrored items.
    fits = {("The cup is on the shelf.", " The cup is high."): -1,
            ("The cup is under the shelf.", " The cup is high."): -5,
            ("The cup is under the shelf.", " The cup is very low."): -2,
            ("The cup is on the shelf.", " The cup is very low."): -3}  # fmt: skip
    stub = Stub(lambda c, t: fits.get((c, t), -9))
    task = EVAL_TASKS.build({"name": "ewok", "comparison": "contexts",
                             "subtasks": ["spatial-relations"]})  # fmt: skip
    result = task.evaluate(stub, ewok_dir)
    # item 1: T1|C1 -1 > T1|C2 -5 and T2|C2 -2 > T2|C1 -3: right; item 2 mirrors it: right.
    assert result["subtasks"] == {"spatial-relations": {"score": 1.0, "n": 2}}
    assert {c for c, _ in stub.pairs} == {"The cup is on the shelf.", "The cup is under the shelf."}
    with pytest.raises(UserError, match="choose from targets, contexts"):
        EVAL_TASKS.build({"name": "ewok", "comparison": "both"})


def test_subsample_and_bad_records(ewok_dir, tmp_path):
    task = EVAL_TASKS.build({"name": "ewok", "max_items_per_subtask": 1})
    result = task.evaluate(Stub(lambda c, t: 0.0), ewok_dir)
    assert result["n_items"] == 2 and result["score"] == 0.0  # constant scores: all ties
    bad = tmp_path / "bad"
    write(bad, "agent-properties", [{"Domain": "agent-properties", "Context1": "x",
                                     "Context2": "y", "Target1": "z"}])  # fmt: skip
    with pytest.raises(UserError, match=r"agent-properties\.jsonl:1: .*'Target2'"):
        EVAL_TASKS.build({"name": "ewok"}).evaluate(Stub(len), bad)


def test_missing_data_is_one_line_naming_the_folder_and_data_flag(tmp_path, monkeypatch):
    monkeypatch.delenv("THRIFTY_DATA", raising=False)
    for root in (tmp_path, None):
        with pytest.raises(UserError) as err:
            task_folder("ewok", root, None)
        message = str(err.value)
        assert "\n" not in message and "--data DIR" in message
        assert "babylm_eval/full_eval/ewok_filtered" in message and "terms of use" in message


@pytest.mark.parametrize("backend", ["causal", "mlm", "mntp"])
def test_every_backend_scores_ewok(task_run, ewok_dir, backend):
    scorer = Scorer(task_run.model, task_run.tokenizer, backend)
    result = EVAL_TASKS.build({"name": "ewok"}).evaluate(scorer, ewok_dir)
    assert result["backend"] == backend and result["n_items"] == 3
    assert 0.0 <= result["score"] <= 1.0 and not math.isnan(result["score"])
