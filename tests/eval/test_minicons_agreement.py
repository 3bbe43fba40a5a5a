"""thrifty's ``causal`` scores agree with minicons (Misra 2022), an independent implementation.

A nano causal LM is trained for a few steps on real BabyLM text, exported with
``thrifty.export.hf.export_hf`` to a local folder, and loaded by
``minicons.scorer.IncrementalLMScorer`` from that folder (``HF_HUB_OFFLINE=1``: never the Hub).
Both score a few hundred BLiMP pairs; decisions must be identical and log-probs within 1e-4.

The BOS convention that makes them agree: thrifty prepends ``<s>`` to every sentence and sums
log p(w_t | <s> w_<t) over every real token, so the first word is scored too. minicons always
drops the first token's (unpredicted) log-prob and scores the rest. The exported tokenizer
prepends ``<s>`` itself (``add_bos_token``), so minicons' default ``bos_token=False`` is the
matching call: minicons drops ``<s>`` and scores every word, exactly as thrifty does.
``bos_token=True`` would be wrong here: minicons would prepend the *text* "<s>", which the
exported tokenizer (``split_special_tokens``) reads as three characters, not as BOS. For a
tokenizer that adds no BOS (GPT-2 style), ``bos_token=True`` is what gives thrifty's convention;
without either, the first word would go unscored and the two would disagree.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from thrifty.config import load_config
from thrifty.data.tokenizer import BOS_ID
from thrifty.eval.minimal_pairs import read_pairs
from thrifty.eval.scoring import score_sentences
from thrifty.export.hf import export_hf
from thrifty.runs import load_model

PAIRS_PER_PARADIGM = 4  # 67 paradigms: 268 pairs
NANO = Path(__file__).resolve().parents[2] / "configs" / "nano.yaml"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data):
    """(thrifty model, tokenizer, export folder) of a nano causal LM trained for 30 steps."""
    from thrifty.data.prepare import prepare
    from thrifty.train.loop import train

    root = tmp_path_factory.mktemp("minicons")
    corpus = root / "corpus"
    corpus.mkdir()
    with gzip.open(shared_data / "babylm" / "train_10M" / "switchboard.train.gz", "rt") as f:
        (corpus / "switchboard.train").write_text("".join(f.readlines()[:6000]))
    data = root / "data"
    prepare([str(corpus)], data, budget_words=None, vocab_size=1000, progress=False)
    cfg = load_config(
        NANO,
        [f"data.path={data}", f"runs_dir={root / 'runs'}", "train.threads=1",
         "train.max_steps=30", "train.eval_every=1000", "train.checkpoint_every=30"],
    )  # fmt: skip
    train(cfg)
    loaded = load_model(cfg.run_dir)
    folder = export_hf(cfg.run_dir, root / "hf")
    return loaded.model, loaded.tokenizer(), folder


def test_minicons_agrees_with_thrifty_causal(exported, blimp_dir, monkeypatch):
    scorer_mod = pytest.importorskip(
        "minicons.scorer", reason="minicons is not installed (pip install -e '.[hf]')"
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer, folder = exported
    pairs = read_pairs(blimp_dir, max_pairs_per_paradigm=PAIRS_PER_PARADIGM, seed=3)
    sentences = list(dict.fromkeys(s for p in pairs for s in (p.good, p.bad)))
    assert len(pairs) == 67 * PAIRS_PER_PARADIGM

    ours = score_sentences(model, tokenizer, sentences, "causal")
    lm = scorer_mod.IncrementalLMScorer(str(folder), device="cpu")
    assert lm.tokenizer("Who ran?")["input_ids"][0] == BOS_ID  # the export adds <s> itself
    theirs = []
    for i in range(0, len(sentences), 64):
        batch = sentences[i : i + 64]
        theirs += lm.sequence_score(batch, reduction=lambda x: x.sum(0).item())  # bos_token=False

    assert theirs == pytest.approx(ours, abs=1e-4)
    score = dict(zip(sentences, ours, strict=True))
    other = dict(zip(sentences, theirs, strict=True))
    decide = [score[p.good] > score[p.bad] for p in pairs]
    assert decide == [other[p.good] > other[p.bad] for p in pairs]
    assert 0.2 < sum(decide) / len(decide) < 1.0  # a trained model, not a degenerate one

    # The convention is load-bearing: bos_token=True prepends the *text* "<s>" (split into
    # characters by the exported tokenizer) and every score changes.
    text_bos = lm.sequence_score(sentences[:8], reduction=lambda x: x.sum(0).item(), bos_token=True)
    assert all(abs(a - b) > 1e-3 for a, b in zip(text_bos, ours[:8], strict=True))
