"""Start-up and step time of ``train.compile: true`` (the whole model) against ``regional``
(each block compiled in place, ``thrifty.train.compiling``), on CPU.

Run from the repository root::

    . .venv/bin/activate
    python benchmarks/compile_startup.py --sizes mini small --threads 2

Each (size, mode) runs in a fresh process with an empty inductor cache, so nothing compiled by
one counts for another. A step is forward, the tied head on a quarter of the positions, and
backward, on a batch of 16 × 128 random ids; the first step includes compilation, then the
median of 6 more steps is the step time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

MODES = ("true", "regional")


def measure(size: str, mode: str, threads: int) -> tuple[float, float]:
    """In this process: (first step s, median step s)."""
    import torch

    from thrifty.config import ModelConfig
    from thrifty.models.transformer import Transformer
    from thrifty.train.compiling import compiled

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size=size, vocab_size=8192))
    forward = compiled(model, True if mode == "true" else mode)
    ids = torch.randint(10, 8192, (16, 128))

    def step() -> float:
        start = time.perf_counter()
        hidden = forward(ids)
        model.logits(hidden[:, :32]).logsumexp(-1).mean().backward()
        return time.perf_counter() - start

    first = step()
    return first, statistics.median(step() for _ in range(6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["mini", "small"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child: one measurement, printed for the parent
        print(*measure(*args.one, args.threads))
        return
    print("| size | train.compile | first step s | step ms |\n|---|---|---:|---:|")
    for size in args.sizes:
        for mode in MODES:
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
                threads = str(args.threads)
                cmd = [sys.executable, __file__, "--one", size, mode, "--threads", threads]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            first, step = map(float, out.stdout.split()[-2:])
            print(f"| {size} | {mode} | {first:.1f} | {step * 1e3:.0f} |")


if __name__ == "__main__":
    main()
