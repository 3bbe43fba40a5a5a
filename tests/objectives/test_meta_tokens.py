"""``meta_lm``: meta-token insertion, ignored ``<m>`` targets, and the rate's bounds."""

from __future__ import annotations

import pytest
import torch

from thrifty.config import ModelConfig, load_config
from thrifty.data.tokenizer import META_ID, NUM_SPECIAL
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.base import IGNORE
from thrifty.objectives.meta_tokens import insert_meta_tokens, meta_positions, meta_targets
from thrifty.objectives.randomness import RowRandom

V, L = 97, 33


def windows(rows: int = 4) -> torch.Tensor:
    return torch.randint(NUM_SPECIAL, V, (rows, L), generator=torch.Generator().manual_seed(0))


def model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(size="nano", vocab_size=V, attention={"name": "meta"}))


@pytest.mark.parametrize("placement", ["random", "periodic"])
def test_insertion_keeps_the_text_in_order_at_the_rate(placement):
    ids = windows(64)
    where = meta_positions(L, 0.125, placement, RowRandom(0, "meta", 0, range(64)))
    out = insert_meta_tokens(ids, where)
    assert out.shape == ids.shape and not where[:, 0].any()
    assert abs(where.float().mean().item() - 0.125) < 0.03
    for row, original in zip(out, ids):
        real = row[row != META_ID]
        assert torch.equal(real, original[: len(real)])  # shifted right, tail dropped
    if placement == "periodic":
        gaps = {int(d) for r in where for d in r.nonzero().flatten().diff()}
        assert gaps == {8}


def test_labels_at_meta_tokens_are_ignored_and_the_rest_count():
    ids = windows()
    ids[:, [4, 9]] = META_ID
    targets = meta_targets(ids)
    assert torch.all(targets[:, [3, 8]] == IGNORE)  # predicting <m>: ignored
    assert torch.equal(targets[:, 4], ids[:, 5])  # predicting from <m>: kept
    assert (targets == IGNORE).sum() == 2 * len(ids)


def test_loss_is_the_mean_over_real_targets():
    m = model()
    objective = OBJECTIVES.build({"name": "meta_lm", "rate": 0.2}, m, seed=3)
    batch = Batch(windows())
    out = objective(batch)
    ids = objective.transform(batch)
    assert (ids == META_ID).any()
    logits = m.logits(m(ids[:, :-1]))
    targets = meta_targets(ids)
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, V), targets.reshape(-1), ignore_index=IGNORE
    )
    assert torch.allclose(out.loss, expected, atol=1e-5)


def test_rate_zero_is_plain_causal_lm():
    batch = Batch(windows())
    meta = OBJECTIVES.build({"name": "meta_lm", "rate": 0.0}, model())(batch)
    plain = OBJECTIVES.build({"name": "causal_lm"}, model())(batch)
    assert torch.equal(meta.loss, plain.loss)


def test_placements_follow_the_global_sample_not_the_batch():
    objective = OBJECTIVES.build({"name": "meta_lm"}, model(), seed=0)
    ids = windows()
    whole = objective.transform(Batch(ids, micro=3))
    half = objective.transform(Batch(ids[2:], micro=3, rows=torch.tensor([2, 3]), global_rows=4))
    assert torch.equal(whole[2:], half)


@pytest.mark.parametrize("rate", ["1.0", "-0.1"])
def test_a_rate_outside_zero_one_is_refused_by_name(rate):
    with pytest.raises(UserError, match=rf"objective.rate={rate}"):
        load_config(None, ["objective.name=meta_lm", f"objective.rate={rate}"])
