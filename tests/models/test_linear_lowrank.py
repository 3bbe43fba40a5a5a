import pytest
import torch
import torch.nn.functional as F

from thrifty.errors import UserError
from thrifty.models.linear import LINEARS, make_linear
from thrifty.models.linear.lowrank import LowRank


def layer(d_in=24, d_out=40, rank=6, seed=0) -> LowRank:
    torch.manual_seed(seed)
    return LowRank(LowRank.Config(rank=rank), d_in, d_out)


def test_parameter_count_and_macs_are_rank_times_both_widths():
    for d_in, d_out, rank in [(24, 40, 6), (64, 16, 1), (8, 8, 8)]:
        lr = layer(d_in, d_out, rank)
        assert sum(p.numel() for p in lr.parameters()) == rank * (d_in + d_out)
        assert lr.macs_per_token() == rank * (d_in + d_out)


def test_dense_weight_is_what_forward_applies():
    lr = layer()
    x = torch.randn(3, 5, 24)
    assert lr.dense_weight().shape == (40, 24)
    assert torch.allclose(lr(x), F.linear(x, lr.dense_weight()), atol=1e-6)
    assert torch.linalg.matrix_rank(lr.dense_weight()) == 6


@pytest.mark.parametrize("std", [0.02, 0.1])
def test_reset_parameters_gives_the_requested_entry_scale(std):
    lr = layer(d_in=128, d_out=96, rank=16)
    lr.reset_parameters(std)
    assert 0.5 * std < lr.dense_weight().std().item() < 2 * std


def test_state_dict_round_trip_reproduces_outputs():
    source, target = layer(seed=0), layer(seed=1)
    x = torch.randn(4, 24)
    assert not torch.equal(source(x), target(x))
    target.load_state_dict(source.state_dict())
    assert torch.equal(source(x), target(x))


def test_bad_rank_names_the_key():
    with pytest.raises(UserError, match=r"model\.linear\.rank=0"):
        LINEARS.config({"name": "lowrank", "rank": 0}, "model.linear")
    with pytest.raises(UserError, match="rank"):
        make_linear({"name": "lowrank", "rank": -3}, 8, 8)
    with pytest.raises(UserError, match="did you mean 'rank'"):
        make_linear({"name": "lowrank", "rnak": 4}, 8, 8)


def test_built_through_the_registry_with_defaults():
    lr = make_linear({"name": "lowrank"}, 64, 48)
    assert isinstance(lr, LowRank) and type(lr).registry_name == "lowrank"
    assert lr(torch.randn(2, 64)).shape == (2, 48)
