"""Contrastive objectives under torchrun: two CPU processes with 4 rows each train exactly what
one process trains with 8, because each rank scores its rows against every rank's (gathered,
differentiable) features, not only its own; and the gathered gradient reaches each rank's own
rows only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from thrifty.cli.main import main
from thrifty.config import load_config
from thrifty.objectives import cross_rank
from thrifty.objectives.clip import clip_loss
from thrifty.objectives.softcon import contrastive_loss, soft_targets
from thrifty.train.loop import train

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from multiprocess import torchrun  # noqa: E402
from test_data_parallel import assert_close_runs  # noqa: E402

CONFIGS = Path(__file__).parents[2] / "configs"
STEPS = ["train.max_steps=4", "train.log_every=1", "train.eval_every=2", "train.eval_batches=1",
         "train.checkpoint_every=4", "model.n_layers=1", "train.peak_flops=1e11",
         "train.threads=1"]  # fmt: skip
# (config, data, overrides). SimCLR shares SoftCon's gather; its one-positive branch on a
# rank's share of the anchors is checked without processes below.
CASES = {
    "clip": ("clip-digits.yaml", "pairs:digits", []),
    "softcon": ("softcon-mosaic.yaml", "images:mosaic", []),
}


# softcon in the slow tier: both cases gather every rank's rows through the same cross_rank path
@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[pytest.mark.slow] if c == "softcon" else []) for c in CASES]
)
def test_two_processes_see_the_global_batch_as_negatives(tmp_path, case):
    config, source, extra = CASES[case]
    data = tmp_path / "data"
    assert main(["prepare", source, "--out", str(data), "--quiet"]) == 0
    common = [f"data.path={data}", f"runs_dir={tmp_path / 'runs'}", *STEPS, *extra]
    train(load_config(CONFIGS / config, [*common, "name=one", "train.batch_size=8"]))
    done = torchrun(2, *common, "name=two", "train.batch_size=4", config=config, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_close_runs(tmp_path / "runs" / "one", tmp_path / "runs" / "two")


@pytest.mark.parametrize("soft", [False, True])
def test_a_ranks_share_of_the_anchors_gets_the_rows_of_the_whole_batch_loss(soft):
    z = F.normalize(torch.randn(8, 5), dim=-1)  # 4 images, two views each
    target = soft_targets(torch.eye(4, 6).long(), 0.5) if soft else None
    whole = contrastive_loss(z, 0.2, target)
    part = contrastive_loss(z, 0.2, target, torch.tensor([2, 3]))
    assert torch.allclose(part, whole[2:])


def test_clip_rows_of_one_rank_match_the_whole_batch_loss():
    image, text = (F.normalize(torch.randn(6, 4), dim=-1) for _ in range(2))
    whole = clip_loss(image, text, torch.tensor(10.0))
    assert torch.allclose(clip_loss(image, text, torch.tensor(10.0), torch.arange(3, 6)), whole[3:])


def test_gather_is_the_identity_outside_the_training_step():
    t = torch.randn(3, 2)
    rows, first = cross_rank.gather(t)
    assert rows is t and first == 0
    with cross_rank.across_ranks(lambda x: (torch.cat([x, x]), 3)):
        rows, first = cross_rank.gather(t)
    assert rows.shape == (6, 2) and first == 3
    assert cross_rank.gather(t)[0] is t
