"""`thrifty submit`: a git repository whose branches are the word-mark checkpoints, each loading
in transformers (offline) with the logits of its checkpoint; runs that break a rule are refused
and nothing is written."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch

from thrifty.cli.main import main
from thrifty.config import load_config
from thrifty.data.budget import Ledger
from thrifty.data.tokenizer import BOS_ID
from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError
from thrifty.export import repository
from thrifty.export.submission import missing_marks, revision_name, submit
from thrifty.runs import load_model

transformers = pytest.importorskip("transformers")

WORDS = "the a dog cat child ball red big runs sees wants is was happy and park home".split()
MARKS = [1000, 2000]  # words; stand-ins for BabyLM's 1M, 2M, ... so that a nano run crosses them
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 20-step nano run with checkpoints at MARKS, the final one, and two BLiMP-style results:
    one of the final checkpoint, one of the first mark's."""
    import thrifty.train.loop as loop
    from thrifty.data.prepare import prepare

    root = tmp_path_factory.mktemp("submit")
    rng = random.Random(0)
    (root / "corpus").mkdir()
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(5, 25))) for _ in range(600)]
    (root / "corpus" / "text.train").write_text("\n".join(lines) + "\n")
    data = root / "prepared"
    prepare([str(root / "corpus")], data, budget_words=None, vocab_size=300, progress=False)
    cfg = load_config(
        ROOT / "configs" / "nano.yaml",
        [
            f"data.path={data}",
            f"runs_dir={root / 'runs'}",
            "train.threads=1",
            "train.babylm_marks=true",
            "train.checkpoint_every=0",
            "train.keep_last=1",
        ],
    )
    words_per_step = 8 * 32 * TokenStore(cfg.data.path, "train").words_per_token
    assert words_per_step < MARKS[0] and 19 * words_per_step > MARKS[-1]  # distinct steps
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "word_marks", lambda: MARKS)
        loop.train(cfg)
    pairs = root / "pairs"
    pairs.mkdir()
    rows = [
        {"sentence_good": "the dog runs", "sentence_bad": "the dog run", "UID": "agreement"},
        {"sentence_good": "a cat sees", "sentence_bad": "a cat see", "UID": "agreement"},
    ]
    (pairs / "agreement.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = cfg.run_dir
    assert main(["eval", str(run), "--task", "blimp", "--data", str(pairs)]) == 0
    first = _checkpoint_of_mark(run, MARKS[0])
    old = run / "eval" / "blimp_first_mark.json"
    args = ["eval", str(first), "--task", "blimp", "--data", str(pairs), "--out", str(old)]
    assert main(args) == 0
    return run


@pytest.fixture(scope="module")
def submitted(trained, tmp_path_factory) -> Path:
    return submit(trained, tmp_path_factory.mktemp("out") / "submission").path


def _checkpoint_of_mark(run: Path, mark: int) -> Path:
    for ckpt in sorted((run / "checkpoints").glob("step_*")):
        if json.loads((ckpt / "state.json").read_text()).get("word_mark") == mark:
            return ckpt
    raise AssertionError(f"no checkpoint of word mark {mark}")


def _logits_match(folder: Path, ckpt: Path) -> None:
    """transformers' model in ``folder`` computes the logits of thrifty's checkpoint ``ckpt``."""
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    loaded = load_model(ckpt)
    ids = torch.randint(0, loaded.cfg.model.vocab_size, (2, 24), generator=torch.Generator())
    ids[:, 0] = BOS_ID
    with torch.no_grad():
        expected = loaded.model.logits(loaded.model(ids, causal=True))
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-4, rtol=1e-4)


def test_each_branch_loads_with_the_logits_of_its_checkpoint(trained, submitted, tmp_path):
    assert repository.branches(submitted) == ["chck_1K", "chck_2K", "main"]
    for mark, name in zip(MARKS, ("chck_1K", "chck_2K")):
        checkout = repository.checkout_revision(submitted, name, tmp_path / name)
        _logits_match(checkout, _checkpoint_of_mark(trained, mark))
        tok = transformers.AutoTokenizer.from_pretrained(checkout)  # a whole model folder
        assert tok("the dog runs")["input_ids"][0] == BOS_ID
        state = json.loads((checkout / "thrifty.json").read_text())
        assert state["ledger"]["words_seen"] >= mark
        assert not (checkout / "audit.json").exists()  # the rule check is main's
    _logits_match(submitted, trained / "checkpoints" / "step_00000020")


def test_transformers_ignores_revision_for_a_local_folder(trained, submitted):
    """Why the card says to check a branch out: from a local folder, ``revision=`` loads what is
    checked out (main). Should transformers start honouring it, update the card and docstring."""
    model = transformers.AutoModelForCausalLM.from_pretrained(submitted, revision="chck_1K")
    main_weights = transformers.AutoModelForCausalLM.from_pretrained(submitted).state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, main_weights[name])
    first = load_model(_checkpoint_of_mark(trained, MARKS[0])).model.embed.weight
    assert not torch.equal(model.model.embed_tokens.weight, first)


def test_main_holds_ledger_rule_check_results_and_card(trained, submitted):
    assert (submitted / "ledger.json").read_text() == (trained / "ledger.json").read_text()
    audit = json.loads((submitted / "audit.json").read_text())
    assert audit["verdict"] == "pass" and audit["violations"] == []
    assert sorted(p.name for p in (submitted / "results").iterdir()) == [
        "blimp_causal.json",
        "pipeline",  # what `thrifty eval` wrote in the 2025 pipeline's layout
    ]
    assert list((submitted / "results" / "pipeline").rglob("best_temperature_report.txt"))
    info = json.loads((submitted / "submission.json").read_text())
    assert [r["word_mark"] for r in info["revisions"]] == MARKS
    assert info["results_left_out"] == [
        {"file": "blimp_first_mark.json", "checkpoint": _checkpoint_of_mark(trained, 1000).name}
    ]
    assert info["remote_code"] is False and info["architecture"] == "LlamaForCausalLM"
    card = (submitted / "README.md").read_text()
    ledger = Ledger.load(trained)
    score = json.loads((trained / "eval" / "blimp_causal.json").read_text())["score"]
    for fact in (
        f"words seen in training: {ledger.words_seen:,.0f}",
        f"epochs: {ledger.epochs:.2f}",
        "rule check (`thrifty audit`): pass",
        "objective: `causal_lm`",
        "size nano",
        f"{score:.4f}",
        "`chck_1K` | 1,000",
        "`chck_2K` | 2,000",
        "git clone --branch chck_1K",
    ):
        assert fact in card, fact


def test_history_runs_in_training_order(submitted):
    log = repository.git(submitted, "log", "--format=%an|%s", "main").splitlines()
    subjects = [line.split(":")[0] for line in log]
    assert subjects == ["thrifty|final model", "thrifty|chck_2K", "thrifty|chck_1K"]
    assert repository.git(submitted, "status", "--porcelain") == ""  # main is checked out


def _toy_run(root: Path, toy, objective: str = "causal_lm", **ledger) -> Path:
    run = toy.build_run(root, objective=objective).run_dir
    words = {"budget_words": 10_000, "prepared_words": {"train": 1000, "valid": 0}}
    Ledger(**{**words, "words_seen": 5000, **ledger}).save(run)
    return run


@pytest.mark.parametrize(
    ("ledger", "rule"),
    [
        ({"words_seen": 11_000}, "11.000 epochs exceed the maximum of 10"),
        ({"budget_words": 900}, "charged words 1,000 exceed the budget of 900 words"),
    ],
    ids=["epochs", "budget"],
)
def test_a_run_that_breaks_a_rule_is_refused_and_nothing_written(
    tmp_path, toy, capsys, ledger, rule
):
    run = _toy_run(tmp_path / "run", toy, **ledger)
    assert main(["audit", str(run)]) == 1  # the same verdict as the audit
    assert rule in capsys.readouterr().out
    out = tmp_path / "out" / "submission"
    assert main(["submit", str(run), "--out", str(out)]) == 2
    assert rule in capsys.readouterr().err
    assert not out.parent.exists() or os.listdir(out.parent) == []


def test_an_existing_folder_is_refused_unless_overwrite(tmp_path, toy, capsys):
    run = _toy_run(tmp_path / "run", toy)
    out = tmp_path / "submission"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        submit(run, out)
    assert (out / "keep.txt").exists()
    assert main(["submit", str(run), "--out", str(out), "--overwrite"]) == 0
    assert "no word-mark checkpoints" in capsys.readouterr().out
    assert not (out / "keep.txt").exists() and repository.branches(out) == ["main"]
    assert sorted(os.listdir(tmp_path)) == ["run", "submission"]  # no temp folders left


def test_commits_ignore_the_users_git_config(tmp_path, toy, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    # signing that would fail, another author, and a variable pointing at another repository
    (home / ".gitconfig").write_text("[user]\n\tname = Someone\n[commit]\n\tgpgsign = true\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    out = submit(_toy_run(tmp_path / "run", toy), tmp_path / "submission").path
    assert repository.git(out, "log", "--format=%an <%ae>") == "thrifty <thrifty@localhost>"
    assert not (tmp_path / "elsewhere").exists()


def test_remote_code_is_chosen_by_model_kind(tmp_path, toy):
    hybrid = _toy_run(tmp_path / "gpt_bert", toy, objective="gpt_bert")
    auto = submit(hybrid, tmp_path / "auto")
    config = json.loads((auto.path / "config.json").read_text())
    assert auto.remote_code and "AutoModelForMaskedLM" in config["auto_map"]
    model = transformers.AutoModelForMaskedLM.from_pretrained(auto.path, trust_remote_code=True)
    assert type(model).__name__ == "ThriftyForMaskedLM"
    plain = submit(hybrid, tmp_path / "plain", remote_code=False)
    config = json.loads((plain.path / "config.json").read_text())
    assert not plain.remote_code and config["architectures"] == ["LlamaForCausalLM"]
    causal = submit(_toy_run(tmp_path / "causal", toy), tmp_path / "causal_out")
    assert not causal.remote_code


def test_revision_names_follow_the_2025_naming_and_never_round():
    assert revision_name(1_000_000) == "chck_1M"
    assert revision_name(10_000_000) == "chck_10M"
    assert revision_name(1_000_000_000) == "chck_1000M"
    assert revision_name(500_000) == "chck_500K"
    assert revision_name(1_500_000) == "chck_1500K"
    assert revision_name(750) == "chck_750"


def test_missing_marks_are_those_passed_without_a_checkpoint():
    from thrifty.export.submission import Revision

    kept = [Revision("chck_1M", Path("a"), 5, 1_000_000, 1.2e6)]
    marks = [1_000_000, 2_000_000, 3_000_000]
    assert missing_marks(marks, kept, 2.5e6) == [2_000_000]
