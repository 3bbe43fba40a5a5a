"""Stopping rules are caps: the planned run never exceeds max_epochs / max_words / max_tokens and
misses each by less than one step, for any batch, accumulation and world size; BabyLM marks."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.config import TrainConfig
from thrifty.data.budget import Ledger
from thrifty.errors import UserError
from thrifty.train.schedule import plan_steps, word_marks


@st.composite
def layouts(draw: st.DrawFn) -> dict:
    """A global batch (batch x accum x world) and a training split (tokens, words, windows) of
    at least two global batches, so that every rule below allows a whole step."""
    batch, accum, world = (draw(st.integers(1, 512)), draw(st.integers(1, 16)),
                           draw(st.integers(1, 64)))  # fmt: skip
    rows = batch * accum * world
    seq_len = draw(st.integers(1, 512))
    windows = rows * draw(st.integers(2, 40)) + draw(st.integers(0, rows - 1))
    tail = draw(st.integers(0, seq_len - 1))  # tokens after the last whole window
    tokens = windows * seq_len + 1 + tail
    words = max(1, math.floor(tokens * draw(st.floats(0.2, 1.5))))
    return {
        "seq_len": seq_len,
        "windows": windows,
        "tokens": tokens,
        "words": words,
        "words_per_token": words / tokens,  # as TokenStore.words_per_token
        "rows": rows,
    }


def plan(layout: dict, **rule: float) -> int:
    cfg = TrainConfig(**rule)
    return plan_steps(
        cfg, layout["windows"], layout["rows"], layout["seq_len"], layout["words_per_token"]
    )


def charged_words(layout: dict, steps: int) -> Fraction:
    """Words the ledger charges for ``steps`` steps, exactly."""
    return steps * layout["rows"] * layout["seq_len"] * Fraction(layout["words_per_token"])


@settings(max_examples=400, deadline=None)
@given(layout=layouts(), epochs=st.sampled_from([0.5, 1, 2.5, 3, 7.3, 10, 16, 40]))
def test_epoch_cap_is_never_exceeded_and_missed_by_less_than_a_step(layout, epochs):
    cap = Fraction(repr(float(epochs))) * layout["windows"]  # windows the rule allows
    steps = plan(layout, max_epochs=epochs)
    served = steps * layout["rows"]
    assert served <= cap < served + layout["rows"]
    # the ledger's view: words seen stay within epochs x prepared training words
    assert charged_words(layout, steps) <= Fraction(repr(float(epochs))) * layout["words"]
    ledger = Ledger(prepared_words={"train": layout["words"], "valid": 0}, max_epochs=epochs)
    ledger.charge_tokens(served * layout["seq_len"], layout["words_per_token"])
    assert ledger.violations() == []


@settings(max_examples=400, deadline=None)
@given(layout=layouts(), fit=st.integers(1, 10**5), extra=st.integers(0, 10**8))
def test_word_cap_is_never_exceeded_and_missed_by_less_than_a_step(layout, fit, extra):
    max_words = math.ceil(charged_words(layout, fit)) + extra  # at least ``fit`` steps fit
    steps = plan(layout, max_words=max_words)
    assert charged_words(layout, steps) <= max_words < charged_words(layout, steps + 1)


@settings(max_examples=400, deadline=None)
@given(layout=layouts(), steps=st.integers(1, 10**5), extra=st.floats(0, 0.999))
def test_token_cap_is_never_exceeded_and_missed_by_less_than_a_step(layout, steps, extra):
    per_step = layout["rows"] * layout["seq_len"]
    max_tokens = steps * per_step + math.floor(extra * per_step)  # exactly ``steps`` fit
    assert plan(layout, max_tokens=max_tokens) == steps
    assert steps * per_step <= max_tokens < (steps + 1) * per_step


@settings(max_examples=200, deadline=None)
@given(layout=layouts(), max_steps=st.integers(1, 10**6), epochs=st.sampled_from([1, 10]))
def test_the_first_rule_to_bind_wins(layout, max_steps, epochs):
    by_epochs = plan(layout, max_epochs=epochs)
    assert plan(layout, max_steps=max_steps, max_epochs=epochs) == min(max_steps, by_epochs)


def test_a_cap_below_one_step_is_a_clear_error():
    layout = {"seq_len": 32, "windows": 10, "words_per_token": 0.75, "rows": 64}
    with pytest.raises(UserError, match=r"train.max_epochs=1 allows no whole step of 64"):
        plan(layout, max_epochs=1)
    with pytest.raises(UserError, match=r"train.max_tokens=100 allows no whole step"):
        plan(layout, max_tokens=100)


def test_word_marks_cover_every_track():
    marks = word_marks()
    millions = [m // 1_000_000 for m in marks]
    assert millions[:9] == list(range(1, 10))
    assert millions[9:18] == list(range(10, 100, 10))
    assert millions[18:] == list(range(100, 1001, 100))
    assert marks == sorted(set(marks)) and marks[-1] == 1_000_000_000


def test_a_max_epochs_run_passes_its_own_audit(nano_cfg, tmp_path, capsys):
    """A real run at max_epochs: 10, with a global batch that does not divide 10 epochs of
    windows (rounding up would overshoot by most of a step), ends within the rule."""
    import random

    from thrifty.cli.main import main
    from thrifty.data.prepare import prepare
    from thrifty.data.tokens import TokenStore
    from thrifty.train.loop import train

    rng, words = random.Random(0), "the a dog cat sees runs big small park home".split()
    (tmp_path / "text.txt").write_text(
        "\n".join(" ".join(rng.choices(words, k=rng.randint(5, 20))) for _ in range(200))
    )
    data = tmp_path / "data"
    prepare([str(tmp_path / "text.txt")], data, budget_words=None, vocab_size=280,
            valid_fraction=0.05, progress=False)  # fmt: skip
    seq_len = 16
    store = TokenStore(data, "train")
    windows = store.num_windows(seq_len)
    tail_words = (len(store) - windows * seq_len) * store.words_per_token

    def overshoot(rows: int) -> float:  # words past 10 epochs if the last step were kept
        extra_rows = -(10 * windows) % rows
        return extra_rows * seq_len * store.words_per_token - 10 * tail_words

    batch = max(range(8, 24), key=lambda b: overshoot(2 * b))
    assert overshoot(2 * batch) > 0  # rounding up would break the rule with this batch
    cfg = nano_cfg(
        f"data.path={data}", f"data.seq_len={seq_len}", "train.max_steps=null",
        "train.max_epochs=10", f"train.batch_size={batch}", "train.grad_accum=2",
        "train.eval_every=0", "train.checkpoint_every=0", "train.log_every=50",
        "train.peak_flops=1e11",
    )  # fmt: skip
    summary = train(cfg)
    assert summary["steps"] == 10 * windows // (2 * batch)
    assert summary["epochs"] <= 10
    capsys.readouterr()
    assert main(["audit", str(cfg.run_dir)]) == 0
    assert "VIOLATION" not in capsys.readouterr().out
