"""CoLoR-Filter (Brandfonbrener et al. 2024): scores, the top-n rule, and `thrifty select` end to
end on a two-domain toy pool, with its ledger and audit."""

import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from thrifty.cli.main import main
from thrifty.cli.select import color_filter_select
from thrifty.data import color_filter as cf
from thrifty.data.budget import Ledger
from thrifty.data.tokenizer import BOS_ID

STORIES = "the a king queen castle war army sword battle ancient empire ruled over land".split()
NURSERY = "mommy daddy ball doggy want play look see it here you me juice cookie".split()
SMALL = ["model.d_model=32", "model.n_heads=2", "data.seq_len=32", "train.batch_size=8"]
SMALL += ["train.peak_flops=1e11"]  # measuring the CPU peak costs seconds per run


def lines(words, n, seed):
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choices(words, k=rng.randint(10, 30))) for _ in range(n)) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("color")
    (root / "pool").mkdir()
    (root / "pool" / "stories.txt").write_text(lines(STORIES, 240, 0))
    (root / "pool" / "nursery.txt").write_text(lines(NURSERY, 60, 1))
    (root / "target.txt").write_text(lines(NURSERY, 40, 2))
    return root


BUDGET = 5000  # the pipeline reads 4,000 candidate words and the ~700-word target


def select(corpus, name, **changes):
    settings = dict(tau=4, keep_words=1000, budget_words=BUDGET, chunk_words=25, vocab_size=280)
    settings |= dict(threads=1)
    settings |= dict(overrides=SMALL, progress=False) | changes
    return color_filter_select(
        [str(corpus / "pool")], [str(corpus / "target.txt")], corpus / name, **settings
    )


@pytest.fixture(scope="module")
def selected(corpus):
    return select(corpus, "sel"), corpus / "sel"


def test_mean_nll_is_the_per_token_cross_entropy(tiny_run):
    model, tok = tiny_run.model, tiny_run.tokenizer
    text = "the cat sat on the mat"
    ids = torch.tensor([[BOS_ID, *tok.encode(text, add_special_tokens=False).ids]])
    with torch.no_grad():
        logits = model.logits(model(ids[:, :-1]))[0]
    expected = F.cross_entropy(logits, ids[0, 1:]).item()
    assert cf.mean_nll(model, tok, [text])[0] == pytest.approx(expected, rel=1e-5)


def test_scores_are_zero_when_the_two_models_are_equal(tiny_run, toy):
    texts = iter(toy.texts(50))
    prior, cond = cf.score_candidates(tiny_run.model, tiny_run.model, tiny_run.tokenizer, texts)
    assert len(prior) == 50 and (prior > 0).all()
    assert (cf.selection_scores(prior, cond, "color") == 0).all()


def test_top_words_keeps_the_best_until_the_budget_exactly():
    words = np.array([10, 20, 30, 40, 50])
    scores = np.array([0.1, 0.9, 0.5, 0.9, -1.0])
    kept = cf.top_words(words, scores, 65)
    assert kept.tolist() == [0, 20, 5, 40, 0]  # 0.9 (first), 0.9, then 5 words of 0.5
    assert kept.sum() == 65
    assert cf.top_words(words, scores, 65).tolist() == kept.tolist()


def test_selection_is_enriched_in_the_target_domain_and_saved(selected):
    summary, out = selected
    mix = {row["path"].split("/")[-1]: row for row in summary["composition"]}
    assert mix["nursery.txt"]["selected_share"] > 2 * mix["nursery.txt"]["candidate_share"]
    assert summary["mean_score_selected"] > summary["mean_score_candidates"]
    scores = (out / "scores.tsv").read_text().splitlines()
    assert scores[0].startswith("source\tdocument\twords\tprior_nll\tcond_nll\tscore")
    kept = sum(int(row.split("\t")[-1]) for row in scores[1:])
    assert kept == 1000 == json.loads((out / "selection.json").read_text())["selected_words"]


def test_ledger_charges_the_auxiliary_models_and_audit_shows_them(selected, capsys):
    summary, out = selected
    manifest = json.loads((out / "manifest.json").read_text())
    ledger = Ledger.from_dict(manifest["ledger"])
    assert sum(ledger.prepared_words.values()) == 1000 and ledger.selection == "color_filter"
    words = {m["name"]: m["words"] for m in ledger.aux_models}
    target = summary["target_words"]
    assert words == {"color_filter prior": 1000 + 4000, "color_filter conditional": target + 4000}
    assert ledger.charged_words() == 4000 + target  # candidates + target, each word once
    assert main(["audit", str(out)]) == 0
    printed = capsys.readouterr().out
    for expected in (
        "auxiliary model color_filter prior: 5,000 words",
        "candidate pool words (scored by both models): 4,000",
        f"target words (conditional model): {target:,}",
        "selected words: 1,000",
        f"charged: {4000 + target:,} words",
    ):
        assert expected in printed


def test_a_run_on_the_selection_carries_the_charges(selected, tmp_path, capsys):
    from thrifty.config import load_config
    from thrifty.train.loop import train

    _, out = selected
    cfg = load_config(
        "configs/nano.yaml",
        [f"data.path={out}", f"runs_dir={tmp_path}", "train.max_steps=2", "train.threads=1"]
        + ["train.peak_flops=1e11", "data.seq_len=16"],
    )
    train(cfg)
    assert main(["audit", str(cfg.run_dir)]) == 0
    assert "auxiliary model color_filter conditional" in capsys.readouterr().out


def test_selection_is_deterministic_under_a_seed(corpus, selected):
    _, out = selected
    again = select(corpus, "again")
    assert (corpus / "again" / "train.bin").read_bytes() == (out / "train.bin").read_bytes()
    assert (corpus / "again" / "scores.tsv").read_text() == (out / "scores.tsv").read_text()
    assert (
        again["charged_words"] == json.loads((out / "selection.json").read_text())["charged_words"]
    )


def test_too_small_a_pool_and_a_budget_too_small_are_clear_errors(corpus):
    from thrifty.errors import UserError

    with pytest.raises(UserError, match="needs 80,000 candidate words"):
        select(corpus, "big", tau=80)
    with pytest.raises(UserError, match="more than --budget-words 1,500; lower --tau"):
        select(corpus, "capped", budget_words=1500)
    assert not (corpus / "capped").exists()  # refused before anything was trained or written


def test_the_selection_ledger_holds_the_users_total_budget(selected, capsys):
    summary, out = selected
    ledger = Ledger.from_dict(json.loads((out / "manifest.json").read_text())["ledger"])
    assert ledger.budget_words == BUDGET == summary["budget_words"]
    # the tokenizer was trained on the prior's sample of the candidates: charged once, not twice
    assert ledger.tokenizer["path"].endswith("prior-data/tokenizer.json")
    assert ledger.tokenizer_words() == 0 and ledger.charged_words() == summary["charged_words"]
    assert main(["audit", str(out)]) == 0
    assert f"budget: {BUDGET:,} words" in capsys.readouterr().out


def test_a_run_on_the_selection_is_held_to_its_budget(selected, tmp_path, capsys):
    """Continuing the prior on the selection charges the prior's words once more (they are not
    provably the same words): past the user's budget, so the run's audit fails."""
    from thrifty.config import load_config
    from thrifty.train.loop import train

    summary, out = selected
    cfg = load_config(
        "configs/nano.yaml",
        [f"data.path={out}", f"runs_dir={tmp_path}", "train.max_steps=1", "train.threads=1"]
        + ["train.peak_flops=1e11", f"train.init_from={summary['prior_run']}", *SMALL],
    )
    train(cfg)
    assert main(["audit", str(cfg.run_dir)]) == 1
    assert f"exceed the budget of {BUDGET:,} words" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--budget-words", "1000"], "needs --keep-words N, the words to keep"),
        (["--keep-words", "1000"], "needs --budget-words N, the total"),
        (["--keep-words", "1k", "--max-charged-words", "6k"], "--max-charged-words is now "
         "--budget-words N (the total budget)"),
    ],
)  # fmt: skip
def test_old_option_spellings_fail_naming_the_new_ones(corpus, capsys, argv, message):
    pool, target = str(corpus / "pool"), str(corpus / "target.txt")
    code = main(["select", pool, "--target", target, "--out", str(corpus / "x"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (corpus / "x").exists()
