import pytest
import torch
import torch.nn.functional as F

from thrifty.errors import UserError
from thrifty.models.linear import LINEARS, make_linear
from thrifty.models.linear.lowrank import LowRank
from thrifty.models.linear.sltrain import SLTrain, SparsePlusLowRankLinear


def layer(d_in=16, d_out=24, rank=4, alpha=8.0, density=0.25, seed=0) -> SLTrain:
    torch.manual_seed(seed)
    return SLTrain(SLTrain.Config(rank=rank, alpha=alpha, density=density), d_in, d_out)


def randomize(sl: SLTrain) -> SLTrain:
    """Give B nonzero entries (it starts at zero), so every gradient path is exercised."""
    with torch.no_grad():
        sl.B.normal_()
    return sl


def naive_weight(sl: SLTrain) -> torch.Tensor:
    """The paper's plain-autograd formula, which keeps W alive for backward."""
    sparse = torch.zeros(sl.d_out * sl.d_in, dtype=sl.values.dtype)
    sparse = sparse.scatter_add(0, sl.indices, sl.values).view(sl.d_out, sl.d_in)
    return sl.scale * sl.B @ sl.A + sparse


def test_parameter_count_is_low_rank_plus_support():
    for d_in, d_out, rank, density in [(16, 24, 4, 0.25), (64, 192, 8, 0.03), (10, 7, 2, 0.5)]:
        sl = layer(d_in, d_out, rank, density=density)
        expected = rank * (d_in + d_out) + int(density * d_in * d_out)
        assert sum(p.numel() for p in sl.parameters()) == expected
        assert sl.values.shape == sl.indices.shape == (int(density * d_in * d_out),)
        # The forward applies the rebuilt dense W to each row.
        assert sl.macs_per_token() == d_in * d_out


def test_support_is_distinct_sorted_and_differs_between_layers_of_one_shape():
    torch.manual_seed(0)
    first, second = (SLTrain(SLTrain.Config(density=0.1), 32, 32) for _ in range(2))
    for sl in (first, second):
        assert torch.equal(sl.indices, torch.unique(sl.indices))  # unique() also sorts
        assert 0 <= sl.indices.min() and sl.indices.max() < 32 * 32
    assert not torch.equal(first.indices, second.indices)
    assert torch.equal(layer(seed=3).indices, layer(seed=3).indices)


def test_at_init_the_weight_is_the_sparse_part():
    sl = layer()
    assert torch.count_nonzero(sl.B) == 0
    W = sl.dense_weight().view(-1)
    assert torch.equal(W[sl.indices], sl.values.detach())
    off_support = torch.ones_like(W, dtype=torch.bool)
    off_support[sl.indices] = False
    assert torch.count_nonzero(W[off_support]) == 0


def test_zero_density_equals_low_rank_with_the_same_factors():
    sl = randomize(layer(rank=4, alpha=4.0, density=0.0))  # alpha = rank: scale 1
    lr = LowRank(LowRank.Config(rank=4), 16, 24)
    lr.load_state_dict({"A": sl.A.detach(), "B": sl.B.detach()})
    x = torch.randn(2, 3, 16)
    assert sl.values.numel() == 0
    assert torch.allclose(sl(x), lr(x), atol=1e-6)
    sl(x).square().sum().backward()
    lr(x).square().sum().backward()
    assert torch.allclose(sl.A.grad, lr.A.grad, atol=1e-5)
    assert torch.allclose(sl.B.grad, lr.B.grad, atol=1e-5)


def test_gradcheck_of_the_custom_function():
    sl = randomize(layer(d_in=5, d_out=7, rank=2, density=0.3)).double()
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    B, A, values = (t.detach().clone().requires_grad_() for t in (sl.B, sl.A, sl.values))
    assert torch.autograd.gradcheck(
        SparsePlusLowRankLinear.apply, (x, B, A, values, sl.indices, sl.scale)
    )


def test_gradients_match_autograd_of_the_naive_formula():
    sl = randomize(layer())
    x = torch.randn(2, 6, 16, requires_grad=True)
    dy = torch.randn(2, 6, 24)
    custom = torch.autograd.grad((sl(x) * dy).sum(), (x, sl.B, sl.A, sl.values))
    naive = torch.autograd.grad(
        (F.linear(x, naive_weight(sl)) * dy).sum(), (x, sl.B, sl.A, sl.values)
    )
    for got, want in zip(custom, naive):
        assert torch.allclose(got, want, atol=1e-5)


def test_only_the_factors_are_saved_for_backward_not_the_dense_weight():
    sl = randomize(layer(d_in=16, d_out=24))
    saved_sizes = []

    def pack(t):
        saved_sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = sl(torch.randn(5, 16, requires_grad=True))
    assert saved_sizes and 24 * 16 not in saved_sizes  # the hook saw the factors, not W
    y.sum().backward()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.linear(torch.randn(5, 16, requires_grad=True), naive_weight(sl))
    assert 24 * 16 in saved_sizes  # the naive formula keeps W (or its transpose)


def test_values_off_the_support_never_change_in_training():
    sl = layer()
    optimizer = torch.optim.AdamW(sl.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        sl(torch.randn(8, 16)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    sparse = (sl.dense_weight() - sl.scale * sl.B @ sl.A).detach().view(-1)
    off_support = torch.ones_like(sparse, dtype=torch.bool)
    off_support[sl.indices] = False
    assert torch.count_nonzero(sl.B) > 0  # the low-rank part has started to grow
    assert sparse[off_support].abs().max() < 1e-6


def test_dense_weight_is_what_forward_applies():
    sl = randomize(layer())
    x = torch.randn(3, 16)
    assert torch.allclose(sl(x), F.linear(x, sl.dense_weight()), atol=1e-6)
    assert torch.allclose(sl.dense_weight(), naive_weight(sl), atol=1e-6)


@pytest.mark.parametrize("std", [0.02, 0.1])
def test_reset_parameters_gives_the_requested_entry_scale(std):
    sl = layer(d_in=128, d_out=96, rank=8, density=0.03)
    sl.reset_parameters(std)
    assert 0.5 * std < sl.dense_weight().std().item() < 2 * std


def test_state_dict_round_trip_restores_the_support():
    source, target = randomize(layer(seed=0)), layer(seed=1)
    assert not torch.equal(source.indices, target.indices)
    assert "indices" in source.state_dict()
    target.load_state_dict(source.state_dict())
    x = torch.randn(4, 16)
    assert torch.equal(source.indices, target.indices)
    assert torch.equal(source(x), target(x))


def test_bf16_autocast_forward_and_backward():
    sl = randomize(layer())
    x = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = sl(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert sl.values.grad.dtype == torch.float32 and sl.A.grad.dtype == torch.float32


@pytest.mark.parametrize("density", [1.5, 0, 1])
def test_density_outside_the_open_unit_interval_names_the_key(density):
    with pytest.raises(UserError, match=rf"model\.linear\.density={density}"):
        LINEARS.config({"name": "sltrain", "density": density}, "model.linear")
    with pytest.raises(UserError, match="density"):
        make_linear({"name": "sltrain", "density": density}, 8, 8)


def test_bad_rank_and_alpha_name_their_keys():
    with pytest.raises(UserError, match=r"model\.linear\.rank=0"):
        LINEARS.config({"name": "sltrain", "rank": 0}, "model.linear")
    with pytest.raises(UserError, match=r"model\.linear\.alpha=-1"):
        LINEARS.config({"name": "sltrain", "alpha": -1}, "model.linear")
