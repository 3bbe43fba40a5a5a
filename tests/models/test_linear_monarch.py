import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thrifty.errors import UserError
from thrifty.models.linear import LINEARS, make_linear
from thrifty.models.linear.dense import Dense
from thrifty.models.linear.densify import densify
from thrifty.models.linear.lowrank import LowRank
from thrifty.models.linear.monarch import Monarch, project

# (d_in, d_out, blocks): square n = b², square with rank-4 slices, both rectangular
# directions, a middle block smaller than the block count, and one block.
SHAPES = [(16, 16, 4), (64, 64, 4), (64, 192, 4), (192, 64, 4), (64, 8, 4), (12, 18, 3), (6, 9, 1)]


def layer(d_in, d_out, blocks, seed=0, dtype=torch.float64) -> Monarch:
    torch.manual_seed(seed)
    return Monarch(Monarch.Config(blocks=blocks), d_in, d_out).to(dtype)


def reshape_transpose(rows: int, cols: int) -> torch.Tensor:
    """Permutation matrix P with P x = x viewed as (rows, cols), transposed, flattened."""
    order = torch.arange(rows * cols).view(rows, cols).T.reshape(-1)
    return torch.eye(rows * cols, dtype=torch.float64)[order]


def oracle(right: torch.Tensor, left: torch.Tensor, unpermute: bool = True) -> torch.Tensor:
    """The slow, clearly correct dense matrix: block_diag, permutation, block_diag, permutation."""
    b, q, _ = right.shape
    s = left.shape[1]
    M = torch.block_diag(*left) @ reshape_transpose(q, b) @ torch.block_diag(*right)
    return reshape_transpose(b, s) @ M if unpermute else M


@pytest.mark.parametrize("d_in, d_out, blocks", SHAPES)
def test_forward_equals_the_block_diagonal_oracle(d_in, d_out, blocks):
    mo = layer(d_in, d_out, blocks)
    x = torch.randn(2, 3, d_in, dtype=torch.float64)
    M = oracle(mo.right.detach(), mo.left.detach())
    assert M.shape == (d_out, d_in)
    assert torch.allclose(mo(x), F.linear(x, M), atol=1e-10)
    assert torch.allclose(mo.dense_weight(), M, atol=1e-12)


def test_identity_blocks_give_identity_and_the_bare_product_is_the_perfect_shuffle():
    b = 4
    eye = torch.eye(b, dtype=torch.float64).expand(b, b, b)
    mo = layer(b * b, b * b, b)
    with torch.no_grad():
        mo.right.copy_(eye)
        mo.left.copy_(eye)
    assert torch.equal(mo.dense_weight(), torch.eye(b * b, dtype=torch.float64))
    # Without the final un-permute, the same blocks give P itself: pins the convention down.
    assert torch.equal(oracle(mo.right, mo.left, unpermute=False), reshape_transpose(b, b))


def test_square_case_follows_the_index_formula():
    b = 4
    mo = layer(b * b, b * b, b)
    w1, w2 = mo.right.detach(), mo.left.detach()  # (k=r, q=l, p), (l, s, r)
    # y[s·b + l] = Σ_r Σ_p w2[l, s, r] · w1[r, l, p] · x[r·b + p]
    M = torch.einsum("lsr,rlp->slrp", w2, w1).reshape(b * b, b * b)
    assert torch.allclose(mo.dense_weight(), M, atol=1e-12)


@pytest.mark.parametrize("d_in, d_out, blocks", SHAPES)
def test_parameter_count_and_macs_formula(d_in, d_out, blocks):
    mo = layer(d_in, d_out, blocks)
    middle = min(d_in, d_out) // blocks
    expected = blocks * middle * (d_in // blocks) + blocks * (d_out // blocks) * middle
    assert sum(p.numel() for p in mo.parameters()) == expected
    assert mo.macs_per_token() == expected == min(d_in, d_out) * (d_in + d_out) // blocks


@pytest.mark.parametrize("d_in, d_out, blocks", SHAPES)
def test_projection_of_a_monarch_matrix_is_exact(d_in, d_out, blocks):
    M = layer(d_in, d_out, blocks).dense_weight().detach()
    right, left = project(M, blocks)
    assert torch.allclose(oracle(right, left), M, atol=1e-10)
    rebuilt = Monarch.from_dense(M, blocks)
    assert rebuilt.right.dtype == torch.float64
    assert torch.allclose(rebuilt.dense_weight(), M, atol=1e-10)


@pytest.mark.parametrize("d_in, d_out, blocks", SHAPES)
def test_projection_of_a_dense_matrix_beats_other_monarch_matrices(d_in, d_out, blocks):
    torch.manual_seed(1)
    A = torch.randn(d_out, d_in, dtype=torch.float64)
    right, left = project(A, blocks)
    error = (A - oracle(right, left)).norm()
    assert error < A.norm()
    assert error <= (A - layer(d_in, d_out, blocks, seed=2).dense_weight()).norm()
    for _ in range(3):  # optimal, so no nearby Monarch matrix is closer
        nudged = oracle(
            right + 1e-3 * torch.randn_like(right), left + 1e-3 * torch.randn_like(left)
        )
        assert error <= (A - nudged).norm()


def test_projection_error_of_a_random_square_matrix_is_as_the_paper_card_measured():
    torch.manual_seed(0)
    A = torch.randn(16, 16, dtype=torch.float64)
    relative = (A - Monarch.from_dense(A, 4).dense_weight()).norm() / A.norm()
    assert 0.5 < relative < 0.75  # the card measured ~62% with numpy


def test_dense_weight_is_what_forward_applies():
    mo = layer(64, 192, 4, dtype=torch.float32)
    x = torch.randn(5, 64)
    assert torch.allclose(mo(x), F.linear(x, mo.dense_weight()), atol=1e-5)


@pytest.mark.parametrize("d_in, d_out, blocks", [(128, 96, 4), (256, 256, 16), (64, 8, 4)])
@pytest.mark.parametrize("std", [0.02, 0.1])
def test_reset_parameters_gives_the_requested_entry_scale(d_in, d_out, blocks, std):
    mo = layer(d_in, d_out, blocks, dtype=torch.float32)
    mo.reset_parameters(std)
    assert 0.5 * std < mo.dense_weight().std().item() < 2 * std


def test_state_dict_round_trip_reproduces_outputs():
    source, target = layer(64, 192, 4, seed=0), layer(64, 192, 4, seed=1)
    x = torch.randn(3, 64, dtype=torch.float64)
    target.load_state_dict(source.state_dict())
    assert torch.equal(source(x), target(x))


def test_blocks_that_do_not_divide_the_dimensions_name_the_key_value_and_dimensions():
    with pytest.raises(UserError, match=r"model\.linear\.blocks=5.*d_in=64.*d_out=192"):
        make_linear({"name": "monarch", "blocks": 5}, 64, 192)
    with pytest.raises(UserError, match=r"model\.linear\.blocks=3.*d_in=12.*d_out=20"):
        Monarch.from_dense(torch.randn(20, 12), 3)
    with pytest.raises(UserError, match=r"model\.linear\.blocks=0"):
        LINEARS.config({"name": "monarch", "blocks": 0}, "model.linear")


def test_densify_replaces_monarch_layers_by_equal_dense_layers():
    torch.manual_seed(0)
    section = {"name": "monarch", "blocks": 4}
    model = nn.Sequential(
        make_linear(section, 32, 64),
        nn.ModuleDict({"inner": make_linear(section, 64, 32)}),
        make_linear({"name": "lowrank", "rank": 4}, 32, 32),
    )

    def forward(x):
        return model[2](model[1]["inner"](model[0](x)))

    x = torch.randn(4, 32)
    before = forward(x)
    rng = torch.get_rng_state()
    assert densify(model) == ["0", "1.inner"]
    assert torch.equal(torch.get_rng_state(), rng)  # densifying draws no random numbers
    assert isinstance(model[0], Dense) and isinstance(model[1]["inner"], Dense)
    assert isinstance(model[2], LowRank)
    assert model[0].weight.shape == (64, 32)
    assert torch.allclose(forward(x), before, atol=1e-5)
    assert densify(model) == []
    assert densify(model, ("lowrank",)) == ["2"]
    assert torch.allclose(forward(x), before, atol=1e-5)
