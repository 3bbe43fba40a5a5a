"""Loss-based sample reweighting (Sow et al. 2025): the weights, their gradient, the rewound
probe and the global-batch normalisation under data parallelism."""

from types import SimpleNamespace

import pytest
import torch

from thrifty.config import ModelConfig
from thrifty.data.tokenizer import NUM_SPECIAL
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.reweighting import (
    STRATEGIES,
    Reweighting,
    probe,
    row_weights,
    weight_stats,
)

V = 97
CFG = SimpleNamespace(strategy="linupper", temperature=0.5, delta=1.0)


def model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(size="nano", vocab_size=V, max_seq_len=64))


def windows(B=8, T=17, seed=0) -> torch.Tensor:
    return torch.randint(NUM_SPECIAL, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_weights_sum_to_one_and_are_uniform_for_equal_losses(strategy):
    losses = torch.rand(32, generator=torch.Generator().manual_seed(1)) * 5
    for r in (0.3, 1.0, 4.0):
        w = row_weights(losses, strategy, temperature=r)
        assert w.shape == (32,) and (w > 0).all()
        assert w.sum().item() == pytest.approx(1.0, abs=1e-6)
    same = row_weights(torch.full((16,), 2.5), strategy)
    assert torch.equal(same, torch.full((16,), 1 / 16))
    tiny_spread = row_weights(torch.tensor([2.5, 2.5 + 1e-9, 2.5]), strategy)
    assert torch.allclose(tiny_spread, torch.full((3,), 1 / 3))


def test_linupper_is_non_decreasing_in_the_loss_and_flat_on_the_upper_half():
    losses = torch.rand(64, generator=torch.Generator().manual_seed(2)) * 3 + 1
    w = row_weights(losses, "linupper", temperature=0.5)
    order = torch.argsort(losses)
    assert (w[order].diff() >= -1e-9).all()
    upper = losses >= (losses.min() + losses.max()) / 2
    assert torch.allclose(w[upper], w[upper].max().expand(int(upper.sum())))
    assert w[losses.argmin()] < w[upper].min()  # the easiest sample is down-weighted
    # quadratic prefers the middle, extremes the ends
    q, e = row_weights(losses, "quadratic"), row_weights(losses, "extremes")
    middle = torch.argmin((losses - (losses.min() + losses.max()) / 2).abs())
    assert q[middle] == q.max() and e[middle] == e.min()


def test_stats_of_uniform_and_of_skewed_weights():
    losses = torch.arange(8.0)
    uniform = weight_stats(torch.full((8,), 1 / 8), losses)
    assert uniform["rw_entropy"] == pytest.approx(1.0) and uniform["rw_low_quartile"] == 0.25
    skewed = weight_stats(row_weights(losses, "linupper", temperature=0.2), losses)
    assert skewed["rw_entropy"] < 1.0 and skewed["rw_low_quartile"] < 0.25


def test_gradient_is_the_weighted_sum_of_per_sample_gradients():
    m = model()
    objective = OBJECTIVES.build({"name": "causal_lm"}, m)
    ids = windows()
    rw = Reweighting(CFG)
    objective(Batch(ids, reweight=rw)).loss.backward()  # one pass: weights from its own losses
    got = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    w = row_weights(probe(objective, Batch(ids)), "linupper", temperature=0.5)
    assert not torch.allclose(w, torch.full_like(w, 1 / len(w)))
    for i in range(len(ids)):  # Σ_i w_i ∇ℓ_i, one row at a time, w held constant
        (w[i] * objective(Batch(ids[i : i + 1])).loss).backward()
    for n, p in m.named_parameters():
        assert torch.allclose(got[n], p.grad, atol=1e-6, rtol=1e-4), n
    stats = rw.pop_stats()
    assert 0 < stats["rw_entropy"] < 1 and rw.pop_stats() == {}


@pytest.mark.parametrize("name", ["causal_lm", "masked_lm", "gpt_bert"])
def test_one_pass_and_probe_paths_agree(name):
    """token_term's one-pass weighting equals the generic probe-then-weight path."""
    grads = []
    for one_pass in (True, False):
        m = model()
        objective = OBJECTIVES.build({"name": name}, m, seed=3)
        batch = Batch(windows(), progress=0.5, micro=15)
        rw = Reweighting(CFG)
        if one_pass:
            assert objective.reweightable
            batch.reweight = rw
        else:
            batch.weights = rw.probe_weights(objective, batch)
        objective(batch).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", ["masked_lm", "gpt_bert"])
def test_probe_rewinds_the_objective_so_the_weighted_pass_sees_the_same_masks(name):
    objective = OBJECTIVES.build({"name": name}, model(), seed=3)
    batch = Batch(windows(), progress=0.5, micro=1)
    first = probe(objective, batch)
    again = objective(batch)
    # equal up to the rounding of the kernels taken without and with gradients; other masks
    # would move each row's mean loss far more
    torch.testing.assert_close(first, again.sample_losses.detach(), rtol=1e-5, atol=1e-6)


def test_global_batch_normalisation_under_data_parallelism():
    """Each of two ranks gets its slice of the global batch's weights, times the world size."""
    losses = torch.rand(8, generator=torch.Generator().manual_seed(4)) * 3
    whole = Reweighting(CFG)(losses)
    for rank in (0, 1):
        part = Reweighting(CFG, gather=lambda _: (losses, [4, 4]), rank=rank, world=2)
        assert torch.allclose(
            part(losses[rank * 4 : rank * 4 + 4]), 2 * whole[rank * 4 : rank * 4 + 4]
        )


def test_objectives_without_per_row_losses_are_refused():
    from thrifty.errors import UserError
    from thrifty.objectives.base import Objective, Output

    class NoRows(Objective):
        def __call__(self, batch):
            return Output(batch.ids.float().mean())

    with pytest.raises(UserError, match="per-row losses"):
        probe(NoRows(None, model()), Batch(windows()))


def _gather_worker(rank: int, init_file: str, out_dir: str) -> None:
    import os

    from thrifty.train import distributed

    os.environ.update(RANK=str(rank), WORLD_SIZE="2")
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    losses = torch.arange(8.0).square()
    rw = Reweighting(CFG, gather=distributed.all_gather_rows, rank=rank, world=2)
    torch.save(rw(losses[rank * 4 : rank * 4 + 4]), f"{out_dir}/w{rank}.pt")
    # uneven parts (a GPT-BERT rank with more causal rows than another): 3 rows and 5 rows
    start, stop = (0, 3) if rank == 0 else (3, 8)
    torch.save(rw(losses[start:stop]), f"{out_dir}/uneven{rank}.pt")
    distributed.shutdown()


def test_all_gather_over_two_processes_gives_the_global_weights(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    whole = Reweighting(CFG)(torch.arange(8.0).square())
    for rank in (0, 1):
        got = torch.load(tmp_path / f"w{rank}.pt", weights_only=True)
        assert torch.allclose(got, 2 * whole[rank * 4 : rank * 4 + 4], atol=1e-6)
    uneven = torch.cat([torch.load(tmp_path / f"uneven{r}.pt", weights_only=True) for r in (0, 1)])
    assert torch.allclose(uneven, 2 * whole, atol=1e-6)
