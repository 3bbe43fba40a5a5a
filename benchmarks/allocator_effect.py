"""How much of the CPU training step is the host allocator's: each contender of
``benchmarks/throughput.py`` (thrifty eager, the HF loop eager) timed in a fresh process with
glibc's default ``malloc`` and with ``mmap`` turned off for large blocks
(``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=64G``, so freed memory is reused rather than given
back to the kernel and faulted in again: what a caching allocator such as jemalloc or tcmalloc
also gives).

By default glibc serves every block of 32 MiB or more with a fresh ``mmap``, so each such
tensor costs a page fault per 4 KiB the first time it is written. The HF loop materialises
(B·T, V) logits, their log-softmax and its gradient each step, far above that size; thrifty's
chunked head does not. Run from the repository root (Linux with glibc)::

    python benchmarks/allocator_effect.py --sizes mini small --rounds 2

Each (contender, allocator) pair runs ``--rounds`` times in its own process, alternating; the
table gives the median step time over the rounds' medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NO_MMAP = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(64 << 30)}


def child(args: argparse.Namespace) -> None:
    """Build one contender, warm up, time ``--steps`` steps; print the median in seconds."""
    import torch

    sys.path.insert(0, str(HERE))
    import throughput

    torch.set_num_threads(args.threads)
    targs = throughput.parse_args(["--size", args.size, "--batch", "32", "--seq-len", "128"])
    batches, vocab, _ = throughput.make_batches(targs)
    build = throughput.hf_contender if args.child == "hf" else throughput.thrifty_contender
    contender = build(targs, vocab, compile=False)
    for i in range(3):
        contender.step(batches[i % len(batches)])
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        contender.step(batches[i % len(batches)])
        times.append(time.perf_counter() - start)
    print(statistics.median(times))


def run_child(args: argparse.Namespace, name: str, size: str, no_mmap: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in NO_MMAP} | (NO_MMAP if no_mmap else {})
    command = [sys.executable, __file__, "--child", name, "--size", size]
    command += ["--threads", str(args.threads), "--steps", str(args.steps)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["mini"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=["hf", "thrifty"], help=argparse.SUPPRESS)
    parser.add_argument("--size", default="mini", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    print(f"batch 32 x 128 tokens, fp32, {args.threads} threads, eager; median of {args.steps} "
          f"steps per process, median over {args.rounds} rounds (ms)")  # fmt: skip
    print("\n| size | contender | glibc default | no mmap | speed-up | thrifty vs HF |")
    print("|---|---|---:|---:|---:|---|")
    for size in args.sizes:
        ms: dict[tuple[str, bool], list[float]] = {}
        for _ in range(args.rounds):
            for name in ("thrifty", "hf"):
                for no_mmap in (False, True):
                    seconds = run_child(args, name, size, no_mmap)
                    ms.setdefault((name, no_mmap), []).append(seconds * 1e3)
        med = {key: statistics.median(v) for key, v in ms.items()}
        for name, label in (("hf", "HF Llama (plain loop)"), ("thrifty", "thrifty (eager)")):
            default, no_mmap = med[(name, False)], med[(name, True)]
            ratio = ""
            if name == "thrifty":
                ratio = (f"{med[('hf', False)] / default:.2f}x default, "
                         f"{med[('hf', True)] / no_mmap:.2f}x no mmap")  # fmt: skip
            print(f"| {size} | {label} | {default:.0f} | {no_mmap:.0f} | "
                  f"{default / no_mmap:.2f}x | {ratio} |")  # fmt: skip


if __name__ == "__main__":
    main()
