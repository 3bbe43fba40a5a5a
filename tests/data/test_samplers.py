"""Samplers: the state they save is enough to continue the order exactly, and a checkpoint from
other data is refused."""

import numpy as np
import pytest

from thrifty.data.samplers import SAMPLERS
from thrifty.errors import UserError


def draw(sampler, n: int, times: int) -> np.ndarray:
    return np.concatenate([sampler.next_indices(n)[0] for _ in range(times)])


@pytest.mark.parametrize("name", SAMPLERS.names())
@pytest.mark.parametrize("shuffle", [True, False])
def test_state_continues_the_order_exactly_across_epochs(name, shuffle):
    section = {"name": name, "shuffle": shuffle} if name == "uniform" else {"name": name}
    straight = SAMPLERS.build(section, 23, seed=5)
    expected = draw(straight, 7, 10)  # 70 windows: three epochs of 23, mid-epoch at the end
    first = SAMPLERS.build(section, 23, seed=5)
    head = draw(first, 7, 4)
    second = SAMPLERS.build(section, 23, seed=5)
    second.load_state_dict(first.state_dict())
    assert np.array_equal(np.concatenate([head, draw(second, 7, 6)]), expected)
    assert second.epochs == pytest.approx(70 / 23)
    for epoch in range(3):  # every window once per epoch
        assert sorted(expected[epoch * 23 : (epoch + 1) * 23]) == list(range(23))


def test_state_from_other_data_or_seed_is_refused():
    state = SAMPLERS.build({"name": "uniform"}, 23, seed=5).state_dict()
    with pytest.raises(UserError, match="num_windows=23"):
        SAMPLERS.build({"name": "uniform"}, 24, seed=5).load_state_dict(state)
    with pytest.raises(UserError, match="seed=5"):
        SAMPLERS.build({"name": "uniform"}, 23, seed=6).load_state_dict(state)
    old = {"served": 3}  # checkpoints written before the check still load
    SAMPLERS.build({"name": "uniform"}, 23, seed=6).load_state_dict(old)
