"""GeRe's threshold-margin loss and the replay objective (Zhang et al. 2025)."""

import copy

import pytest
import torch

from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.anchoring import hidden_thresholds, margin_loss, margin_penalties


def test_margin_loss_is_zero_in_band_and_positive_when_states_change():
    g = torch.Generator().manual_seed(0)
    h0 = torch.randn(4, 10, 16, generator=g)
    low, high = torch.full((16,), -0.5), torch.full((16,), 0.5)
    assert margin_loss(h0, h0, low, high).item() == 0.0
    # Moves that keep every element in its state cost nothing...
    inside = h0.clone()
    band = (h0 > low) & (h0 < high)
    inside[~band] = h0[~band] * 1.5  # further out on the same side
    assert margin_loss(inside, h0, low, high).item() == 0.0
    # ...crossing a threshold does, and only the violating elements get a gradient.
    h = h0.clone()
    h[0, 0, :] = -h0[0, 0, :].sign() * 2  # flip the first position's states
    h.requires_grad_(True)
    loss = margin_loss(h, h0, low, high)
    assert loss.item() > 0
    loss.backward()
    violating = margin_penalties(h.detach(), h0, low, high) != 0
    assert violating.any() and torch.equal(h.grad != 0, violating)


def test_thresholds_are_mean_plus_minus_sigma_per_dimension():
    torch.manual_seed(0)
    from thrifty.config import ModelConfig
    from thrifty.models.transformer import Transformer

    teacher = Transformer(ModelConfig(size="nano", vocab_size=50, max_seq_len=32))
    ids = torch.randint(6, 50, (6, 17))
    low, high = hidden_thresholds(teacher, ids, causal=True, sigmas=2.0, batch_size=4)
    with torch.no_grad():
        h = teacher(ids[:, :-1], causal=True).reshape(-1, 64).double()
    mean, std = h.mean(0), h.std(0, unbiased=False)
    assert torch.allclose(low.double(), mean - 2 * std, atol=1e-5)
    assert torch.allclose(high.double(), mean + 2 * std, atol=1e-5)


@pytest.fixture(scope="module")
def general_data(tiny_run, tmp_path_factory, toy):
    """Old-domain text prepared with the tiny run's tokenizer."""
    from thrifty.data.prepare import prepare

    folder = tmp_path_factory.mktemp("general")
    (folder / "text.txt").write_text("\n".join(toy.texts(600, seed=5)) + "\n")
    out = folder / "prepared"
    words = sum(len(t.split()) for t in toy.texts())  # what the tiny run's tokenizer read
    prepare([str(folder / "text.txt")], out, budget_words=None, valid_fraction=0.1,
            tokenizer_path=tiny_run.run_dir / "tokenizer.json", tokenizer_words=words,
            progress=False)  # fmt: skip
    return out


def replay_objective(tiny_run, data, **settings):
    student = copy.deepcopy(tiny_run.model).train()
    section = {"name": "replay", "data": str(data), "windows": 12, "ratio": 0.5, **settings}
    objective = OBJECTIVES.build(section, student, seed=0)
    charges = objective.setup(
        seq_len=16, device=torch.device("cpu"), init_from=str(tiny_run.run_dir)
    )
    return objective, charges


def batch(tiny_run, micro=0):
    V = tiny_run.model.cfg.vocab_size
    ids = torch.randint(6, V, (4, 17), generator=torch.Generator().manual_seed(micro))
    return Batch(ids, micro=micro)


def test_tm_loss_is_zero_at_step_zero_and_grows_as_the_model_moves(tiny_run, general_data):
    objective, charges = replay_objective(tiny_run, general_data, dynamic=False, weight=100.0)
    assert list(charges) == [f"replay set (12 windows of {general_data})"]  # teacher = start
    out = objective(batch(tiny_run))
    assert out.metrics["constraint"] == 0.0
    assert out.loss.item() == pytest.approx(
        0.5 * out.metrics["new_loss"] + 0.5 * out.metrics["replay_loss"], rel=1e-6
    )
    with torch.no_grad():
        for p in objective.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    moved = objective(batch(tiny_run))
    assert moved.metrics["constraint"] > 0
    assert moved.loss.item() == pytest.approx(
        0.5 * moved.metrics["new_loss"]
        + 0.5 * moved.metrics["replay_loss"]
        + 100.0 * moved.metrics["constraint"],
        rel=1e-5,
    )


def test_dynamic_weight_balances_the_two_terms(tiny_run, general_data):
    objective, _ = replay_objective(tiny_run, general_data, constraint="l2")
    with torch.no_grad():
        for p in objective.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    m = objective(batch(tiny_run)).metrics
    ce = 0.5 * m["new_loss"] + 0.5 * m["replay_loss"]
    assert m["constraint_weight"] * m["constraint"] == pytest.approx(ce, rel=1e-5)
    assert m["loss"] == pytest.approx(2 * ce, rel=1e-5)


def test_replay_rows_depend_only_on_seed_and_micro_batch(tiny_run, general_data):
    objective, _ = replay_objective(tiny_run, general_data)
    assert objective.replay.shape == (12, 17)
    (a, where), (b, _) = objective.replay_rows(3, 4), objective.replay_rows(3, 4)
    assert torch.equal(a, b) and a.shape == (2, 17)
    assert where.tolist() == [4, 5]  # after the micro-batch's own rows: their own streams
    assert not torch.equal(a, objective.replay_rows(4, 4)[0])
    again, _ = replay_objective(tiny_run, general_data)  # rebuilt, as on resume
    assert torch.equal(again.replay, objective.replay)
    assert torch.equal(again.low, objective.low) and torch.equal(again.high, objective.high)


def test_validation_reports_the_old_domain_and_leaves_masks_alone(tiny_run, general_data):
    import contextlib

    objective, _ = replay_objective(
        tiny_run, general_data, base={"name": "masked_lm"}, constraint="none"
    )
    first = objective.extra_validation(contextlib.nullcontext)
    assert set(first) == {"val_old_loss"} and first["val_old_loss"] > 0
    assert objective.extra_validation(contextlib.nullcontext) == first  # same masks every time
    objective.model.eval()
    out = objective(batch(tiny_run))  # validation batches: the base objective alone
    assert "replay_loss" not in out.metrics


def test_without_data_the_wrapper_is_its_base():
    from thrifty.config import ModelConfig
    from thrifty.models.transformer import Transformer

    torch.manual_seed(0)
    m = Transformer(ModelConfig(size="nano", vocab_size=50, max_seq_len=32))
    ids = torch.randint(6, 50, (4, 17))
    plain = OBJECTIVES.build({"name": "causal_lm"}, m)(Batch(ids)).loss
    wrapped = OBJECTIVES.build({"name": "replay"}, m)(Batch(ids)).loss
    assert torch.equal(plain, wrapped)


def test_bad_settings_are_clear_errors(tiny_run, general_data):
    from thrifty.config import load_config
    from thrifty.errors import UserError

    with pytest.raises(UserError, match="objective.base.*mask_rat"):
        load_config(
            None, ["objective.name=replay", "objective.base={name: masked_lm, mask_rat: 1}"]
        )
    with pytest.raises(UserError, match="objective.windows=100000"):
        replay_objective(tiny_run, general_data, windows=100_000)
