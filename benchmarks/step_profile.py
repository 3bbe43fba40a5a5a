"""Where a CPU training step spends its time, and its peak memory: thrifty vs the HF loop.

For each model size and contender of ``benchmarks/throughput.py`` (the HF Llama plain loop and
thrifty's loop step, both eager; same dimensions, init seed and batches), a fresh process
builds the contender, runs ``--warmup`` steps, then profiles ``--steps`` steps with
``torch.profiler`` and reports:

- the operators by self CPU time (their share of the profiled steps' total), so the cost of
  attention, matmuls, element-wise work and the optimizer is visible op by op;
- the peak resident set size of the process (``ru_maxrss``) and its size before the first step,
  so the training memory is the difference, measured where no other contender ran.

Each contender runs alone in its own process so that one's allocations never count toward the
other's peak. Run from the repository root::

    python benchmarks/step_profile.py --sizes mini small --out step_profile.md
    python benchmarks/step_profile.py --sizes mini --bf16    # both under bf16 autocast

Eager mode only: under ``torch.compile`` the profiler sees fused inductor kernels, which do not
line up op by op with the eager reference.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENDERS = ("hf", "thrifty")


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """Build one contender, warm up, profile; print one JSON line."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, str(HERE))
    import throughput

    torch.set_num_threads(args.threads)
    targs = throughput.parse_args(
        ["--size", args.size, "--batch", str(args.batch), "--seq-len", str(args.seq_len)]
        + ["--bf16"] * args.bf16
    )
    batches, vocab, _ = throughput.make_batches(targs)
    build = throughput.hf_contender if args.child == "hf" else throughput.thrifty_contender
    contender = build(targs, vocab, compile=False)
    before = rss_mib()
    for i in range(args.warmup):
        contender.step(batches[i % len(batches)])
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.steps):
            contender.step(batches[i % len(batches)])
    seconds = (time.perf_counter() - start) / args.steps
    self_us: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        self_us[event.key] += event.self_cpu_time_total
    total = sum(self_us.values())
    top = sorted(self_us.items(), key=lambda kv: -kv[1])[: args.top]
    print(
        json.dumps(
            {
                "contender": contender.name,
                "size": args.size,
                "params": contender.params,
                "step_s": seconds,
                "rss_before_mib": before,
                "rss_peak_mib": rss_mib(),
                "ops": [{"op": k, "share": v / total, "ms": v / 1e3 / args.steps} for k, v in top],
            }
        )
    )


def run_child(args: argparse.Namespace, name: str, size: str) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--size", size]
    for key in ("threads", "batch", "seq_len", "warmup", "steps", "top"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    cmd += ["--bf16"] * args.bf16
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{name} {size} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"Batch {args.batch} x {args.seq_len} tokens, {'bf16 autocast' if args.bf16 else 'fp32'}, "
        f"{args.threads} threads, eager; "
        f"{args.warmup} warm-up steps, {args.steps} profiled.",
        "",
        "| size | contender | params | s/step (profiled) | RSS before (MiB) | peak RSS (MiB) "
        "| training memory (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']} | {r['contender']} | {r['params'] / 1e6:.2f}M | {r['step_s']:.2f} | "
            f"{r['rss_before_mib']:.0f} | {r['rss_peak_mib']:.0f} | "
            f"{r['rss_peak_mib'] - r['rss_before_mib']:.0f} |"
        )
    for r in results:
        lines += [
            "",
            f"**{r['contender']}, {r['size']}**: operators by self CPU time",
            "",
            "| op | share | ms/step |",
            "|---|---:|---:|",
        ]
        lines += [f"| `{o['op']}` | {100 * o['share']:.1f}% | {o['ms']:.1f} |" for o in r["ops"]]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", nargs="+", default=["mini", "small"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--top", type=int, default=12, help="operators listed per contender")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast in both contenders")
    p.add_argument("--out", type=Path, help="also write the markdown here")
    p.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    results = [run_child(args, name, size) for size in args.sizes for name in CONTENDERS]
    text = markdown(results, args)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
