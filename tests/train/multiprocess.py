"""Launch ``thrifty train`` under torchrun on CPU (gloo), for the data-parallel tests.

Run as a script by torchrun (``python -m torch.distributed.run ... tests/train/multiprocess.py``)
it registers a test objective whose loss turns NaN on rank 1 only, then runs thrifty's CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def torchrun(
    nproc: int, *overrides: str, timeout: float = 240, config: str = "nano.yaml"
) -> subprocess.CompletedProcess:
    """``thrifty train configs/CONFIG OVERRIDES`` on ``nproc`` CPU processes."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(Path(__file__).resolve()),
        "train",
        str(ROOT / "configs" / config),
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def register_nan_objective() -> None:
    from thrifty.objectives import OBJECTIVES
    from thrifty.objectives.causal_lm import CausalLM

    @OBJECTIVES.register("nan_on_rank_one")
    class NanOnRankOne(CausalLM):
        """causal_lm whose loss is NaN on rank 1 from the fourth micro-batch on."""

        def __call__(self, batch):
            out = super().__call__(batch)
            if os.environ.get("RANK") == "1" and batch.micro >= 3 and self.model.training:
                nan = float("nan")
                out.terms = {k: replace(t, total=t.total * nan) for k, t in out.terms.items()}
            return out


if __name__ == "__main__":
    register_nan_objective()
    from thrifty.cli.main import main

    sys.exit(main(sys.argv[1:]))
