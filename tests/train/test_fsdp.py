"""``train.parallel=fsdp``: two CPU processes with sharded weights train exactly what one
process trains on the same global batch (weights, loss curve, metrics rows, files); its
checkpoints are the usual whole ones, so runs resume across world sizes and modes; what it
does not support is refused by name."""

import shutil
import sys
from pathlib import Path

import pytest
import torch

from thrifty.errors import UserError
from thrifty.runs import latest_checkpoint
from thrifty.train.checkpoint import load_ema_weights
from thrifty.train.loop import train

sys.path.insert(0, str(Path(__file__).parent))
from multiprocess import torchrun  # noqa: E402
from test_data_parallel import ONE, SAME_WEIGHTS, STEPS, TWO, assert_close_runs, rows  # noqa: E402

FSDP = "train.parallel=fsdp"


def launch(nproc: int, cfg, *overrides: str) -> None:
    done = torchrun(
        nproc,
        f"data.path={cfg.data.path}",
        f"runs_dir={cfg.runs_dir}",
        f"name={cfg.name}",
        "train.threads=1",
        FSDP,
        *overrides,
        timeout=150,  # a hang (ranks out of step in a collective) fails instead of stalling
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "train.parallel=fsdp: weights, gradients, optimizer state in 2 shards" in done.stderr


def listing(run: Path) -> list[str]:
    return sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))


# GPT-BERT's first quarter of every global micro-batch is causal: rank 1 never holds a causal
# row, and still runs the causal pass (on no rows) that the sharded forwards need on every rank
# (and keeps a moving average of the weights, sharded like them, gathered whole when saved)
GPT_BERT = ["objective.mix=per_batch", "objective.causal_fraction=0.25", "train.ema_decay=0.9"]


# causal_lm and masked_lm in the slow tier: GPT-BERT's two parts run both paths in the default
# run
@pytest.mark.parametrize(
    "objective",
    [pytest.param(o, marks=pytest.mark.slow) for o in ("causal_lm", "masked_lm")] + ["gpt_bert"],
)
def test_sharded_processes_train_what_one_process_trains(nano_cfg, objective, request):
    case = [*STEPS, f"objective.name={objective}"]
    if objective == "gpt_bert":
        case += GPT_BERT
    if objective == "causal_lm":  # BLiMP at the end: rank 0 scores a whole copy alone
        blimp_dir = request.getfixturevalue("blimp_dir")
        case += [f"eval.blimp_data={blimp_dir}", "eval.max_pairs_per_paradigm=1"]
        case += ["model.max_seq_len=160"]
    one = nano_cfg("name=one", ONE, *case)
    train(one)
    two = nano_cfg("name=two", TWO, *case)
    launch(2, two, TWO, *case)
    assert_close_runs(one.run_dir, two.run_dir)
    assert listing(one.run_dir) == listing(two.run_dir)  # only rank 0 writes
    if objective == "causal_lm":
        assert rows(two.run_dir)[-1]["blimp_causal"] == rows(one.run_dir)[-1]["blimp_causal"]
    if objective == "gpt_bert":
        a, b = (load_ema_weights(latest_checkpoint(c.run_dir)) for c in (one, two))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key], b[key], **SAME_WEIGHTS), key


# 1->2 (one process saves, two load) in the slow tier; 2->1 gathers and reloads in the default run
@pytest.mark.parametrize("direction", ["2->1", pytest.param("1->2", marks=pytest.mark.slow)])
def test_sharded_checkpoints_resume_across_world_sizes(nano_cfg, direction):
    case = [*STEPS, "train.checkpoint_every=6"]
    straight = nano_cfg("name=straight", ONE, *case)
    train(straight)
    moved = nano_cfg("name=moved", ONE, *case)
    if direction == "2->1":
        launch(2, moved, TWO, *case)
    else:
        train(moved)
    ckpts = moved.run_dir / "checkpoints"  # as if the run died after step 6
    shutil.rmtree(ckpts / "step_00000012")
    (ckpts / "latest").write_text("step_00000006")
    if direction == "2->1":
        train(nano_cfg("name=moved", ONE, *case), resume="auto")
    else:
        launch(2, moved, TWO, *case, "--resume", "auto")
    assert_close_runs(straight.run_dir, moved.run_dir)


@pytest.mark.parametrize(
    "setting, key",
    [
        ("train.densify_at=0.5", "train.densify_at"),
        ("train.compile=true", "train.compile"),
        ("objective.name=electra", "objective.name=electra"),
    ],
)
def test_unsupported_settings_are_refused_by_name(nano_cfg, setting, key):
    with pytest.raises(UserError, match=f"{key} does not combine with train.parallel=fsdp"):
        train(nano_cfg("name=refused", FSDP, "train.max_steps=1", setting))


def test_a_bad_parallel_value_names_the_key(nano_cfg):
    with pytest.raises(UserError, match="train.parallel: 'zero' is not one of ddp, fsdp"):
        nano_cfg("train.parallel=zero")
