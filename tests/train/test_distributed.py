"""Two gloo processes on CPU must produce the gradients of one process on the whole batch."""

import os

import torch
import torch.multiprocessing as mp

from thrifty.config import ModelConfig
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.train import distributed


def batch() -> torch.Tensor:
    return torch.randint(6, 50, (4, 17), generator=torch.Generator().manual_seed(0))


def grads_of(model, ids):
    objective = OBJECTIVES.build({"name": "causal_lm"}, model)
    objective(Batch(ids)).loss.backward()


def worker(rank: int, init_file: str, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2")
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    torch.manual_seed(rank)  # different init on purpose: broadcast must fix it
    model = Transformer(ModelConfig(size="nano", vocab_size=50, max_seq_len=32))
    distributed.broadcast_parameters(model)
    grads_of(model, batch()[rank * 2 : rank * 2 + 2])
    distributed.average_gradients(model)
    torch.save({n: p.grad for n, p in model.named_parameters()}, f"{out_dir}/grads{rank}.pt")
    distributed.shutdown()


def test_two_process_gradients_equal_single_process(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=50, max_seq_len=32))
    grads_of(model, batch())
    for rank in (0, 1):
        got = torch.load(tmp_path / f"grads{rank}.pt", weights_only=True)
        for name, p in model.named_parameters():
            assert torch.allclose(got[name], p.grad, atol=1e-6), name
