"""EVAL_TASKS: every member reads its real files, scores them as the 2025 BabyLM pipeline does,
and reports in the uniform schema (tests use stub scorers where the model does not matter)."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from thrifty.errors import UserError
from thrifty.eval import EVAL_TASKS, Scorer, task_folder, task_folders, task_names
from thrifty.eval.entity_tracking import split_prefix
from thrifty.eval.scoring import score_sentences
from thrifty.eval.wug import average_ranks, spearman

NAMES = ["blimp", "blimp_fast", "blimp_filtered", "blimp_supplement", "closed_book_qa",
         "entity_tracking", "ewok", "reading", "supplement_fast", "wug"]  # fmt: skip
# closed_book_qa reads a corpus's own questions (thrifty synthesize-world), never shared data
UNSHARED = ("closed_book_qa", "ewok")
SUPPLEMENT = {"hypernym": 842, "qa_congruence_easy": 64, "qa_congruence_tricky": 165,
              "subject_aux_inversion": 3867, "turn_taking": 280}  # fmt: skip
UNIFORM = {"task", "data", "backend", "variant", "metric", "score", "macro", "subtasks",
           "n_items", "n_sentences", "seconds", "sentences_per_s"}  # fmt: skip


class Stub:
    """Scores by rule instead of by model; records what it was asked."""

    backend, variant = "stub", "original"

    def __init__(self, sentence=len, continuation=None):
        self.sentence, self.continuation = sentence, continuation
        self.texts, self.pairs = [], []

    def sentences(self, texts):
        self.texts += list(texts)
        return [float(self.sentence(t)) for t in texts]

    def continuations(self, contexts, texts):
        self.pairs += list(zip(contexts, texts, strict=True))
        return [float(self.continuation(c, t)) for c, t in zip(contexts, texts, strict=True)]


def build(name, **cfg):
    return EVAL_TASKS.build({"name": name, **cfg})


def test_registry_members_and_their_real_folders(shared_data, caplog):
    assert EVAL_TASKS.names() == NAMES
    for name in NAMES:
        if name == "ewok":  # not redistributable, so never in the shared data
            with pytest.raises(UserError, match="ewok_filtered.*terms of use"):
                task_folder(name, shared_data, None)
            continue
        if name == "closed_book_qa":
            with pytest.raises(UserError, match="synthesize-world"):
                task_folder(name, shared_data, None)
            continue
        folder = task_folder(name, shared_data, None)
        assert folder == shared_data / EVAL_TASKS.get(name).default_subdir and folder.is_dir()
    assert task_names("all") == NAMES
    with caplog.at_level("INFO", logger="thrifty.eval"):
        folders = task_folders(NAMES, shared_data, None, skip_missing=True)
    assert list(folders) == [n for n in NAMES if n not in UNSHARED]
    assert [r.getMessage() for r in caplog.records] == [
        f"{n} skipped: no data ({shared_data / EVAL_TASKS.get(n).default_subdir})" for n in UNSHARED
    ]
    with pytest.raises(UserError, match="no data for task 'ewok'"):
        task_folders(["wug", "ewok"], shared_data, None)
    assert task_names("wug, blimp,wug") == ["wug", "blimp"]
    with pytest.raises(UserError, match="did you mean 'entity_tracking'"):
        task_names("entity_traking")
    with pytest.raises(UserError, match="unknown config key.*max_items_per_subtask"):
        build("blimp", max_item_per_subtask=3)


def test_data_root_order(shared_data, tmp_path, monkeypatch):
    monkeypatch.delenv("THRIFTY_DATA", raising=False)
    blimp_data = str(shared_data / "blimp")
    assert task_folder("blimp", None, blimp_data) == shared_data / "blimp"
    assert task_folder("wug", None, blimp_data).parent.name == "full_eval"  # the parent is a root
    with pytest.raises(UserError, match="--data-root"):
        task_folder("wug", None, None)
    with pytest.raises(UserError, match=r"tried .*nowhere.*--data-root"):
        task_folder("wug", tmp_path / "nowhere", blimp_data)  # explicit root: no fallback
    monkeypatch.setenv("THRIFTY_DATA", str(shared_data))
    lonely = tmp_path / "lonely" / "blimp"
    lonely.mkdir(parents=True)  # a config blimp folder without babylm_eval/ beside it
    assert task_folder("entity_tracking", None, str(lonely)).is_relative_to(shared_data)
    assert task_folder("blimp", None, str(lonely)) == lonely


def test_supplement_scores_dialogues_as_whole_sentences(shared_data):
    stub = Stub()
    folder = task_folder("blimp_supplement", shared_data, None)
    result = build("blimp_supplement").evaluate(stub, folder)
    assert UNIFORM <= set(result) and result["metric"] == "accuracy"
    assert {k: v["n"] for k, v in result["subtasks"].items()} == SUPPLEMENT
    assert result["n_items"] == sum(SUPPLEMENT.values())
    mean = sum(v["score"] for v in result["subtasks"].values()) / 5
    assert result["score"] == result["macro"] == pytest.approx(mean)
    # The question line is part of what is scored, as in the pipeline (no prefix/continuation).
    assert "A: What did you sell?\nB: A chair." in stub.texts
    assert not any(t.startswith("\n") or t.endswith("\n") for t in stub.texts)


@pytest.mark.parametrize("name,n", [("blimp_fast", 200), ("supplement_fast", 50)])
def test_fast_variants_are_small(shared_data, name, n):
    result = build(name, subtasks=["hypernym"] if name == "supplement_fast" else ["passive_1"])
    result = result.evaluate(Stub(), task_folder(name, shared_data, None))
    [(sub, res)] = result["subtasks"].items()
    assert res["n"] == n and result["n_pairs"] == n


def write_gz(path, rows):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


def test_entity_tracking_first_option_ties_and_aggregation(tmp_path):
    def rec(numops, options):
        return {"numops": numops, "input_prefix": "Box 0 contains the pot. Box 0 contains ",
                "options": options}  # fmt: skip

    # The stub prefers short continuations; "the pot." is the shortest, so first = correct.
    write_gz(tmp_path / "regular.jsonl.gz", [
        rec(0, ["the pot.", "the big cup.", "the red rose."]),  # right
        rec(0, ["the big cup.", "the pot.", "the red rose."]),  # wrong
        rec(1, ["the pot.", "the cup.", "the red rose."]),  # tie (same length): wrong
    ])  # fmt: skip
    write_gz(tmp_path / "ambiref.jsonl.gz", [rec(0, ["the pot.", "the red rose."])])
    stub = Stub(continuation=lambda c, t: -len(t))
    items = tmp_path / "items.jsonl"
    result = build("entity_tracking").evaluate(stub, tmp_path, items_path=items)
    assert result["subtasks"] == {"ambiref_0_ops": {"score": 1.0, "n": 1},
                                  "regular_0_ops": {"score": 0.5, "n": 2},
                                  "regular_1_ops": {"score": 0.0, "n": 1}}  # fmt: skip
    assert result["splits"] == {"ambiref": 1.0, "regular": 0.25}
    assert result["score"] == result["macro"] == pytest.approx(0.625)  # mean over files
    assert result["item_accuracy"] == pytest.approx(0.5)
    # The prefix's trailing space moves onto the option, as joint tokenization would place it.
    assert {c for c, _ in stub.pairs} == {"Box 0 contains the pot. Box 0 contains"}
    assert all(t.startswith(" the ") for _, t in stub.pairs)
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    assert [r["correct"] for r in rows] == [True, True, False, False]
    assert rows[2]["predicted"] == 1


def test_entity_tracking_real_subsets(shared_data):
    stub = Stub(continuation=lambda c, t: -len(t))
    task = build("entity_tracking", max_items_per_subtask=3, subtasks=["move_contents"])
    result = task.evaluate(stub, task_folder("entity_tracking", shared_data, None))
    assert sorted(result["subtasks"]) == [f"move_contents_{k}_ops" for k in range(6)]
    assert result["n_items"] == 18 and set(result["splits"]) == {"move_contents"}
    assert len(stub.pairs) == 18 * 5


def test_split_prefix_tokenizes_like_the_joined_string(task_run, shared_data):
    task = build("entity_tracking", max_items_per_subtask=2)
    tok = task_run.tokenizer
    for item in task.read(task_folder("entity_tracking", shared_data, None)):
        for option in item.options:
            context, continuation = split_prefix(item.prefix, option)
            assert context + continuation == item.prefix + option
            joint = tok.encode(item.prefix + option, add_special_tokens=False).ids
            parts = tok.encode(context, add_special_tokens=False).ids
            parts += tok.encode(continuation, add_special_tokens=False).ids
            assert parts == joint


def test_spearman_matches_scipy_with_ties():
    x = [0.1, 0.5, 0.5, 0.9, 0.2, 0.2, 0.2, 1.0]
    y = [3.0, 1.0, 2.0, 5.0, 0.0, 4.0, 4.0, 6.0]
    assert list(average_ranks([3, 1, 1, 2])) == [4.0, 1.5, 1.5, 3.0]
    stats = pytest.importorskip("scipy.stats")
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_wug_correlates_model_preference_with_humans(shared_data, tmp_path):
    folder = task_folder("wug", shared_data, None)
    rows = []
    ratio = {}
    for line in gzip.open(next(folder.iterdir()), "rt"):
        rec = json.loads(line)
        first, second = rec["sentences"].split("\t")
        ratio[first], ratio[second] = rec["ratio"], 1.0 - rec["ratio"]
        rows.append(rec)
    agree = Stub(sentence=lambda t: math.log(ratio[t] + 1e-3))  # log-odds rise with the ratio
    items = tmp_path / "wug.jsonl"
    result = build("wug").evaluate(agree, folder, items_path=items)
    assert UNIFORM <= set(result) and result["metric"] == "spearman"
    assert result["n_items"] == 200 and result["score"] == pytest.approx(1.0)
    assert result["subtasks"] == {"wug_adj_nominalization": {"score": result["score"], "n": 200}}
    disagree = Stub(sentence=lambda t: -math.log(ratio[t] + 1e-3))
    assert build("wug").evaluate(disagree, folder)["score"] == pytest.approx(-1.0)
    first = json.loads(items.read_text().splitlines()[0])
    assert first["ratio"] == rows[0]["ratio"] and 0.0 <= first["model_prob"] <= 1.0


def test_wug_rejects_malformed_records(tmp_path):
    write_gz(tmp_path / "w.jsonl.gz", [{"sentences": "only one sentence", "ratio": 0.5}])
    with pytest.raises(UserError, match=r"w\.jsonl\.gz:1: .*two tab-separated"):
        build("wug").evaluate(Stub(), tmp_path)


@pytest.mark.parametrize("backend", ["causal", "mlm", "mntp"])
def test_model_scores_every_family(task_run, shared_data, backend):
    scorer = Scorer(task_run.model, task_run.tokenizer, backend)
    for name, cfg in [
        ("blimp_supplement", {"max_items_per_subtask": 3}),
        ("entity_tracking", {"max_items_per_subtask": 1, "subtasks": ["regular"]}),
        ("wug", {"max_items_per_subtask": 12}),
    ]:
        result = build(name, **cfg).evaluate(scorer, task_folder(name, shared_data, None))
        assert result["backend"] == backend and UNIFORM <= set(result)
        low = -1.0 if name == "wug" else 0.0
        assert low <= result["score"] <= 1.0 and not math.isnan(result["score"])


def test_causal_continuation_equals_full_minus_context(task_run, shared_data):
    """The pipeline scores the option's tokens inside the joined string; so do we."""
    scorer = Scorer(task_run.model, task_run.tokenizer, "causal")
    task = build("entity_tracking", max_items_per_subtask=1, subtasks=["ambiref"])
    item = task.read(task_folder("entity_tracking", shared_data, None))[0]
    pairs = [split_prefix(item.prefix, o) for o in item.options]
    cont = scorer.continuations([c for c, _ in pairs], [t for _, t in pairs])
    full = score_sentences(task_run.model, task_run.tokenizer,
                           [item.prefix + o for o in item.options], "causal")  # fmt: skip
    [ctx] = score_sentences(task_run.model, task_run.tokenizer, [pairs[0][0]], "causal")
    assert cont == pytest.approx([f - ctx for f in full], rel=1e-4, abs=1e-3)
