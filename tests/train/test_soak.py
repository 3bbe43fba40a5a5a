"""Soak test: a real `thrifty train` process is SIGKILLed at random moments, each time resumed
with ``--resume auto``, and still ends bit-identical to a run that was never interrupted.

Each life is ``thrifty.cli.main.main(["train", ..., "--resume", "auto"])`` in its own process.
The processes are forked from a multiprocessing fork server that has imported torch once:
importing torch costs seconds of CPU, which would otherwise dominate a test of many lives.
The kill moments come from a seeded RNG; a process is killed only after it has written a
checkpoint of its own, so every kill lands mid-run (while training, checkpointing, or
appending to metrics.jsonl). ``THRIFTY_SOAK_KILLS`` sets the number of kills (default 5).
"""

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thrifty.cli.main import main
from thrifty.runs import latest_checkpoint
from thrifty.train.loop import train

NANO = Path(__file__).parents[2] / "configs" / "nano.yaml"
KILLS = int(os.environ.get("THRIFTY_SOAK_KILLS", "5"))
MARGIN = 8  # steps left after the last kill, so that a kill never comes after the end
STEPS = 3 * KILLS + MARGIN + 4
SETTINGS = [
    f"train.max_steps={STEPS}",
    "train.checkpoint_every=1",
    "train.keep_last=2",
    "train.log_every=1",
    "train.eval_every=0",
    "train.warmup_steps=2",
    "train.peak_flops=1e12",  # skip measuring the CPU's matmul peak in every life
]


@pytest.fixture(scope="module")
def forkserver():
    context = multiprocessing.get_context("forkserver")
    # torch.optim imports torch._dynamo on first use (seconds of CPU): load it once here too.
    context.set_forkserver_preload(["thrifty.cli.main", "thrifty.train.loop", "torch._dynamo"])
    return context


def checkpoint_step(run_dir) -> int:
    """The step of the checkpoint ``latest`` names (0 before the first one)."""
    if not (run_dir / "checkpoints" / "latest").is_file():
        return 0
    return int(latest_checkpoint(run_dir).name.removeprefix("step_"))


def weights(run_dir) -> dict[str, torch.Tensor]:
    ckpt = latest_checkpoint(run_dir)
    out = load_file(str(ckpt / "model.safetensors"))
    if (ckpt / "objective.safetensors").is_file():  # ELECTRA's generator and heads
        out |= {
            f"objective.{k}": v for k, v in load_file(str(ckpt / "objective.safetensors")).items()
        }
    return out


def losses(run_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == list(range(1, STEPS + 1)), "each step logged exactly once"
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def kill_mid_run(context, argv: list[str], cfg, target: int, delay: float) -> None:
    """Start one life, wait until it has checkpointed step ``target`` or later, wait ``delay``
    seconds more, and SIGKILL it; fail if it ended on its own first."""
    run_dir = cfg.run_dir
    start = checkpoint_step(run_dir)
    target = max(target, start + 1)  # evidence of progress made by this life
    assert target <= STEPS - MARGIN // 2, "the previous life ran too far to kill mid-run"
    life = context.Process(target=main, args=(argv,))
    life.start()
    deadline = time.monotonic() + 120
    while checkpoint_step(run_dir) < target:
        if not life.is_alive():
            train(cfg, resume="auto")  # an error that ended the life is raised here
            pytest.fail(f"the life from step {start} ended before its kill at step {target}")
        assert time.monotonic() < deadline, "no progress within two minutes"
        time.sleep(0.002)
    time.sleep(delay)
    os.kill(life.pid, signal.SIGKILL)
    life.join()
    assert life.exitcode == -signal.SIGKILL, f"life from step {start} ended before the kill"
    assert checkpoint_step(run_dir) < STEPS


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["gpt_bert", "electra"])
def test_random_kills_resume_bit_identical(objective, nano_cfg, forkserver):
    straight = nano_cfg("name=straight", f"objective.name={objective}", *SETTINGS)
    train(straight)
    victim = nano_cfg("name=victim", f"objective.name={objective}", *SETTINGS)
    argv = [
        "train",
        str(NANO),
        f"data.path={victim.data.path}",
        f"runs_dir={victim.runs_dir}",
        "name=victim",
        "train.threads=1",
        f"objective.name={objective}",
        *SETTINGS,
        "--resume",
        "auto",
    ]
    rng = random.Random(f"soak:{objective}")
    targets = sorted(rng.sample(range(1, STEPS - MARGIN), KILLS))
    for target in targets:
        kill_mid_run(forkserver, argv, victim, target, delay=rng.uniform(0, 0.03))
    assert train(victim, resume="auto")["steps"] == STEPS  # the last resume runs to the end
    a, b = weights(straight.run_dir), weights(victim.run_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert losses(victim.run_dir) == losses(straight.run_dir)
