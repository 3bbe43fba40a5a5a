import pytest
import torch

from thrifty.config import ModelConfig
from thrifty.data.tokenizer import MASK_ID, NUM_SPECIAL
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.mcl import insert_slots, notebook, swap_tokens
from thrifty.objectives.randomness import RowRandom


def rows(ids: torch.Tensor) -> RowRandom:
    return RowRandom(0, "test", 0, range(len(ids)))


V = 97


def build(**cfg):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=V, max_seq_len=64))
    return model, OBJECTIVES.build({"name": "mcl", **cfg}, model, seed=0)


def windows(B=8, T=33, vocab=V, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(NUM_SPECIAL, vocab, (B, T), generator=g)


def test_swap_permutes_each_row_and_labels_exactly_the_moved_tokens():
    ids = windows(32, 60, vocab=NUM_SPECIAL + 4)  # few distinct tokens: some swaps are no-ops
    ids[:, 0] = 1  # <s> is special: never moved
    corrupted, labels = swap_tokens(ids, 0.3, V, rows(ids), ids)
    assert torch.equal(corrupted.sort(1).values, ids.sort(1).values)
    assert torch.equal(labels, corrupted != ids)
    assert (corrupted[:, 0] == 1).all()
    moved = (corrupted != ids).float().mean().item()
    assert 0.1 < moved < 0.3  # 30% chosen, in pairs; identical pairs stay original


def test_swap_of_identical_tokens_is_labelled_original():
    ids = torch.full((4, 20), NUM_SPECIAL + 1)
    corrupted, labels = swap_tokens(ids, 0.5, V, rows(ids), ids)
    assert torch.equal(corrupted, ids) and not labels.any()


def test_insert_adds_k_slots_and_removing_them_recovers_the_input():
    ids = windows(8, 40)
    with_slots, at = insert_slots(ids, 0.2, rows(ids))
    inserted = at.mask
    k = round(0.2 * 40)
    assert with_slots.shape == ids.shape
    assert (inserted.sum(1) == k).all() and not inserted[:, 0].any()
    assert (with_slots[inserted] == MASK_ID).all()
    assert torch.equal(with_slots[~inserted].view(8, 40 - k), ids[:, : 40 - k])


def test_insert_course_labels_exactly_the_inserted_tokens(monkeypatch):
    _, objective = build(replace_weight=1.0, swap_weight=0.0, correction_gen_weight=0.0,
                         correction_disc_weight=0.0)  # fmt: skip
    seen = []
    original = objective.detect

    def spy(corrupted, labels, real, weights):
        seen.append((corrupted, labels))
        return original(corrupted, labels, real, weights)

    monkeypatch.setattr(objective, "detect", spy)
    ids = windows()
    objective(Batch(ids))
    filled, labels = seen[-1]  # replace first, then insert
    k = round(0.15 * 32)
    assert (labels.sum(1) == k).all()
    assert (filled[labels] >= NUM_SPECIAL).all()  # slots filled by generator samples
    assert torch.equal(filled[~labels].view(8, 32 - k), ids[:, :-1][:, : 32 - k])


def test_notebook_takes_wrong_positions_capped_by_loss():
    ids = windows(2, 10)
    labels = torch.zeros(2, 10, dtype=torch.bool)
    labels[:, :5] = True
    logits = torch.full((2, 10), -1.0)  # predicts "original" everywhere: wrong on 0..4
    bce = torch.arange(20.0).view(2, 10)
    fix = notebook(logits, labels, bce, ids, rate=0.2)  # at most 2 per row
    assert fix.sum(1).tolist() == [2, 2]
    assert fix[:, 3:5].all()  # the highest-loss wrong positions


def test_every_course_and_the_correction_can_be_switched_off():
    ids = windows()
    _, full = build()
    terms, metrics = full.terms(Batch(ids))
    assert set(terms) == {"gen", "rtd", "swap", "insert", "fix_gen", "fix_rtd"}
    for key in ("swap_pos", "insert_pos", "pos_rate", "fixed", "fix_gen_loss", "fix_rtd_loss"):
        assert key in metrics
    _, plain = build(swap_weight=0, insert_weight=0, correction_gen_weight=0,
                     correction_disc_weight=0)  # fmt: skip
    terms, _ = plain.terms(Batch(ids))
    assert set(terms) == {"gen", "rtd"}
    _, swap_only = build(replace_weight=0, insert_weight=0, correction_gen_weight=0,
                         correction_disc_weight=0)  # fmt: skip
    assert set(swap_only.terms(Batch(ids))[0]) == {"gen", "swap"}
    assert swap_only.extra_flops_per_token(32) < full.extra_flops_per_token(32)


def test_loss_weights_each_course():
    _, objective = build(swap_weight=0.5, insert_weight=2.0, correction_gen_weight=0.3)
    ids = windows()
    state = objective.generator.get_state()
    out = objective(Batch(ids))
    objective.generator.set_state(state)
    m = {k: float(v) for k, v in objective(Batch(ids)).metrics.items()}  # same randomness
    lam = 50.0
    expected = (
        m["gen_loss"]
        + lam * (m["rtd_loss"] + 0.5 * m["swap_loss"] + 2.0 * m["insert_loss"])
        + 0.3 * m["fix_gen_loss"]
        + lam * m["fix_rtd_loss"]
    )
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


def test_bad_course_settings_are_rejected():
    with pytest.raises(UserError, match="at least one course"):
        build(replace_weight=0, swap_weight=0, insert_weight=0)
    with pytest.raises(UserError, match="replace course"):
        build(replace_weight=0)
