"""Reading: the real file's words and schema, ΔR² on synthetic reading times that do (and do
not) depend on surprisal, the multi-mask ending against a naive forward, and the OLS pieces."""

from __future__ import annotations

import csv
import math
import random
import zlib

import numpy as np
import pytest
import torch

from thrifty.data.tokenizer import BOS_ID, MASK_ID
from thrifty.errors import UserError
from thrifty.eval import EVAL_TASKS, Scorer, task_folder
from thrifty.eval.mask_ending import score_mask_ending
from thrifty.eval.reading import EYE_TRACKING, MEASURES, SELF_PACED
from thrifty.eval.regression import ols, two_sided_p

SCHEMA = {"task", "data", "backend", "variant", "metric", "score", "macro", "subtasks",
          "measures", "measures_spillover", "correlations", "mask_tokens", "n_items", "n_texts",
          "n_sentences", "seconds", "sentences_per_s"}  # fmt: skip
STATS = {"coefficient", "t", "p_value", "r2", "r2_baseline", "delta_r2", "relative_delta_r2",
         "aic", "delta_aic", "n"}  # fmt: skip


def surprisal_of(context: str, word: str) -> float:
    """A deterministic pseudo-surprisal per (context, word), in [0, 10)."""
    return zlib.crc32(f"{context}|{word}".encode()) % 10_000 / 1000


class Stub:
    """Word log-probs by rule; records the (context, word) pairs it was asked for."""

    backend, variant = "causal", "original"

    def __init__(self):
        self.asked = []

    def word_logprobs(self, contexts, words, mask_tokens=3):
        self.asked += list(zip(contexts, words, strict=True))
        return [-surprisal_of(c, w) for c, w in zip(contexts, words, strict=True)]


def build(**cfg):
    return EVAL_TASKS.build({"name": "reading", **cfg})


def test_real_file_words_schema_and_sentence_subsample(shared_data):
    folder = task_folder("reading", shared_data, None)
    stub = Stub()
    result = build().evaluate(stub, folder)
    assert SCHEMA <= set(result) and result["metric"] == "relative_delta_r2"
    assert result["n_items"] == 1726 and result["n_texts"] == 205
    assert set(result["subtasks"]) == {"eye_tracking", "self_paced_reading"}
    assert set(result["measures"]) == set(MEASURES) == set(result["measures_spillover"])
    assert all(set(v) == STATS for v in result["measures"].values())
    assert result["score"] == pytest.approx(
        (result["subtasks"]["eye_tracking"]["score"]
         + result["subtasks"]["self_paced_reading"]["score"]) / 2)  # fmt: skip
    eye = [result["measures"][m]["relative_delta_r2"] for m in EYE_TRACKING]
    assert result["subtasks"]["eye_tracking"]["score"] == pytest.approx(sum(eye) / 4)
    spill = result["measures_spillover"][SELF_PACED]
    assert result["subtasks"]["self_paced_reading"]["score"] == spill["relative_delta_r2"]
    # 30 words have no frequency; rows without a measured previous word leave the spill-over fit
    assert result["measures"]["RTfirstfix"]["n"] == 1696 and spill["n"] < 1696
    # The word carries its separating space; every context is non-empty text ("None" included).
    assert ("Arthur placed", " the") in stub.asked and ("None", " of") in stub.asked
    assert all(w.startswith(" ") and c for c, w in stub.asked)

    small = build(max_items_per_subtask=5, seed=1).evaluate(Stub(), folder)
    assert small["n_texts"] == 5 and 20 <= small["n_items"] <= 70  # whole sentences of 4-14 words
    assert build(max_items_per_subtask=5, seed=1).read(folder) == build(
        max_items_per_subtask=5, seed=1).read(folder)  # fmt: skip
    only = build(subtasks=["eye_tracking"]).evaluate(Stub(), folder)
    assert only["score"] == only["subtasks"]["eye_tracking"]["score"]
    with pytest.raises(UserError, match="no subtask 'eye'"):
        build(subtasks=["eye"]).evaluate(Stub(), folder)


def write_synthetic(path, n_sentences=120, seed=0):
    """Reading times = baseline + 25 * surprisal + noise for the reading measures; the ERP
    columns are pure noise."""
    rng = random.Random(seed)
    vocab = "the a cat dog sat ran on in mat park big small red blue old new".split()
    header = ["", "item", "word", "sentence", "context_length", "sent_id", "Subtlex_log10",
              "length", *MEASURES, "prev_word", "prev_item", "prev_length"]  # fmt: skip
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        n = 0
        for sent in range(n_sentences):
            words = [rng.choice(vocab).capitalize()] + rng.choices(vocab, k=rng.randint(6, 10))
            for i in range(1, len(words)):
                context, word = " ".join(words[:i]), words[i]
                freq, length = rng.uniform(6, 14), len(word)
                signal = 25 * surprisal_of(context, " " + word)
                base = 200 - 5 * freq + 8 * length
                measures = [base + signal + rng.gauss(0, 20) if m in (*EYE_TRACKING, SELF_PACED)
                            else rng.gauss(0, 1) for m in MEASURES]  # fmt: skip
                prev = [words[i - 1], " ".join(words[: i - 1]), len(words[i - 1])] if i > 1 else [
                    "", "", -1]  # fmt: skip
                out.writerow([n, context, word, " ".join(words), i, sent, freq, length,
                              *measures, *prev])  # fmt: skip
                n += 1


def test_delta_r2_is_large_for_surprisal_driven_times_and_zero_for_noise(tmp_path):
    path = tmp_path / "reading_data.csv"
    write_synthetic(path)
    result = build().evaluate(Stub(), tmp_path)
    for m in (*EYE_TRACKING, SELF_PACED):
        assert result["measures"][m]["relative_delta_r2"] > 0.5, m
        assert result["measures"][m]["p_value"] < 1e-10 and result["correlations"][m] > 0.3
    for m in ("ELAN", "LAN", "N400", "P600", "EPNP", "PNP"):
        assert 0 <= result["measures"][m]["relative_delta_r2"] < 0.02, m
        assert 0 <= result["measures_spillover"][m]["relative_delta_r2"] < 0.03, m
    assert result["subtasks"]["eye_tracking"]["score"] > 0.5
    assert result["subtasks"]["self_paced_reading"]["score"] > 0.5
    # A fit with fewer rows than coefficients is undefined, not an error.
    few = build(max_items_per_subtask=1).evaluate(Stub(), tmp_path)
    assert math.isnan(few["subtasks"]["self_paced_reading"]["score"])


def test_missing_columns_are_named(tmp_path):
    (tmp_path / "r.csv").write_text("item,word\nThe,cat\n")
    with pytest.raises(UserError, match=r"r\.csv: no column 'prev_item'"):
        build().evaluate(Stub(), tmp_path)


@pytest.mark.parametrize("backend", ["causal", "mlm", "mntp"])
def test_tiny_model_on_the_real_file(task_run, shared_data, backend):
    scorer = Scorer(task_run.model, task_run.tokenizer, backend)
    task = build(max_items_per_subtask=8)
    result = task.evaluate(scorer, task_folder("reading", shared_data, None))
    assert SCHEMA <= set(result) and result["backend"] == backend
    assert result["mask_tokens"] == (None if backend == "causal" else 3)
    values = [result["score"], *(v["score"] for v in result["subtasks"].values())]
    values += [v[k] for v in result["measures"].values() for k in ("r2", "delta_r2", "t")]
    assert all(math.isfinite(v) for v in values)
    assert all(v["delta_r2"] >= -1e-9 for v in result["measures"].values())  # nested fits


@torch.no_grad()
def naive_ending(model, tokenizer, context, word, shift, masks):
    """One full bidirectional forward per token of the word."""
    ctx = tokenizer.encode(context, add_special_tokens=False).ids
    wrd = tokenizer.encode(word, add_special_tokens=False).ids
    total = 0.0
    for k, target in enumerate(wrd):
        shown = [BOS_ID, *ctx, *wrd[:k]]
        x = torch.tensor([shown + [MASK_ID] * masks])
        logits = model.logits(model(x, causal=False))[0]
        total += logits[len(shown) - shift].log_softmax(-1)[target].item()
    return total


@pytest.mark.parametrize("backend,shift", [("mlm", 0), ("mntp", 1)])
def test_mask_ending_matches_a_naive_forward(toy, tiny_run, backend, shift):
    contexts = ["the cat sat on", "a dog", "the big red", "it"]
    words = [" the", " " + toy.rare[0], " " + toy.rare[3], " ran"]  # rare words: several tokens
    assert len(tiny_run.tokenizer.encode(words[1], add_special_tokens=False).ids) > 2
    for masks in (1, 3):
        got = score_mask_ending(tiny_run.model, tiny_run.tokenizer, contexts, words, backend,
                                mask_tokens=masks, max_batch_tokens=40)  # fmt: skip
        want = [naive_ending(tiny_run.model, tiny_run.tokenizer, c, w, shift, masks)
                for c, w in zip(contexts, words, strict=True)]  # fmt: skip
        assert got == pytest.approx(want, rel=1e-4, abs=1e-4)
    scorer = Scorer(tiny_run.model, tiny_run.tokenizer, "causal")
    assert scorer.word_logprobs(contexts, words) == scorer.continuations(contexts, words)
    with pytest.raises(UserError, match="mlm and mntp"):
        score_mask_ending(tiny_run.model, tiny_run.tokenizer, contexts, words, "causal")


def test_ols_statistics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = 1.0 + 2.0 * x[:, 0] + rng.normal(size=200)
    design = np.column_stack([np.ones(200), x])
    fit = ols(y, design)
    assert fit.params[1] == pytest.approx(2.0, abs=0.2) and fit.p[1] < 1e-30 and fit.p[2] > 1e-3
    resid = y - design @ fit.params
    assert fit.r2 == pytest.approx(1 - resid @ resid / ((y - y.mean()) @ (y - y.mean())))
    llf = -100 * (math.log(2 * math.pi) + math.log(resid @ resid / 200) + 1)
    assert fit.aic == pytest.approx(-2 * llf + 2 * 3)  # statsmodels' AIC: k counts the intercept
    assert math.isnan(ols(y[:3], design[:3]).r2)  # no residual degrees of freedom
    stats = pytest.importorskip("scipy.stats")
    for t, dof in [(0.3, 3), (2.1, 10), (-4.0, 1500), (12.0, 40)]:
        assert two_sided_p(t, dof) == pytest.approx(2 * stats.t.sf(abs(t), dof), rel=1e-9)
