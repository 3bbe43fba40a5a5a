"""Training throughput on a GPU: thrifty's step against the HF Llama loop, bf16, like with like.

For the sizes and sequence lengths asked (default ``mini`` and ``small`` at 128 and 512 tokens)
both contenders of ``benchmarks/throughput.py`` train on the same device with bf16 autocast, the
same dimensions, init seed and random-id batches: the HF loop as its users write it
(``LlamaForCausalLM``, sdpa, ``torch.optim.AdamW`` with torch's default implementation) and
thrifty's loop step (fused AdamW on GPUs, as ``thrifty.train.loop`` builds it). Each is timed
eager and under ``torch.compile`` (``--no-compile`` skips the compiled pair), steps alternating
between contenders, and compared with the HF row of the same mode.

MFU = FLOPs/token x tokens/s / peak, FLOPs/token as in ``throughput.py`` (PaLM), and the peak the
best bf16 matmul this run measured on the device (``--peak-size``), so MFU never leans on a
datasheet number.

On a GPU (under 2 minutes for the defaults on one H200)::

    python benchmarks/gpu_throughput.py --out gpu_throughput.md

Without one, ``--scale cpu`` (the default when no GPU is visible) runs the same code path on the
CPU at a toy size in fp32, so the script is tested where it cannot be measured::

    python benchmarks/gpu_throughput.py --scale cpu
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402

SCALES = {
    # tokens per step fixed, so the rows differ in shape and not in work per step
    "gpu": dict(sizes=("mini", "small"), seq_lens=(128, 512), tokens=65_536, warmup=3, steps=10,
                rounds=2, peak_size=8192),
    "cpu": dict(sizes=("nano",), seq_lens=(32, 64), tokens=512, warmup=1, steps=2, rounds=1,
                peak_size=512),
}  # fmt: skip


def device_peak(device: torch.device, n: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """Best FLOP/s of an (n x n) @ (n x n) matmul in ``dtype`` on ``device``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = a @ b  # wake the device, allocate
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def measure(size: str, seq_len: int, s: dict, args) -> list[dict]:
    """Every contender at one (size, seq_len): tokens/s per round, params, FLOPs/token."""
    batch = max(1, s["tokens"] // seq_len)
    targs = throughput.parse_args(
        ["--size", size, "--seq-len", str(seq_len), "--batch", str(batch),
         "--warmup", str(s["warmup"]), "--steps", str(s["steps"]), "--device", args.device,
         *(["--bf16"] if args.bf16 else [])]
    )  # fmt: skip
    batches, vocab, _ = throughput.make_batches(targs)
    builders = [("HF", False, throughput.hf_contender), ("thrifty", False, None)]
    if args.compile:
        builders += [("HF", True, throughput.hf_contender), ("thrifty", True, None)]
    contenders = []
    for _, compiled, hf in builders:
        if hf is not None:
            contender = hf(targs, vocab, compile=compiled)
        else:
            contender = throughput.thrifty_contender(targs, vocab, compile=compiled)
        contender.step(batches[0])  # compiles, allocates the optimizer state
        contenders.append(contender)
    for _ in range(s["rounds"]):
        throughput.run_round(contenders, batches, targs)
    tokens = batch * seq_len
    return [
        {
            "size": size,
            "seq_len": seq_len,
            "batch": batch,
            "name": c.name,
            "compiled": c.compiled,
            "params": c.params,
            "flops_per_token": c.flops_per_token,
            "tokens_per_s": statistics.median(c.tokens_per_s(tokens)),
        }
        for c in contenders
    ]


def markdown(rows: list[dict], peak: float, args, s: dict) -> str:
    dtype = "bf16 autocast" if args.bf16 else "fp32"
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    lines = [
        f"{name}, torch {torch.__version__}, {dtype}; {s['tokens']:,} tokens per step; "
        f"{s['rounds']} rounds x ({s['warmup']} warm-up + {s['steps']} measured steps); "
        f"measured matmul peak {peak / 1e12:.3g} TFLOP/s",
        "",
        "| size | seq | batch | contender | params | tokens/s | MFU | vs HF, same mode |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        hf = next(
            x
            for x in rows
            if x["size"] == r["size"]
            and x["seq_len"] == r["seq_len"]
            and x["compiled"] == r["compiled"]
            and x["name"].startswith("HF")
        )
        ratio = "-" if hf is r else f"**{r['tokens_per_s'] / hf['tokens_per_s']:.2f}x**"
        mfu = r["flops_per_token"] * r["tokens_per_s"] / peak
        lines.append(
            f"| {r['size']} | {r['seq_len']} | {r['batch']} | {r['name']} | "
            f"{r['params'] / 1e6:.1f}M | {r['tokens_per_s']:,.0f} | {mfu:.3f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    gpu = torch.cuda.is_available()
    p.add_argument("--scale", choices=sorted(SCALES), default="gpu" if gpu else "cpu")
    p.add_argument("--sizes", nargs="+", help="model sizes (default: the scale's)")
    p.add_argument("--seq-lens", nargs="+", type=int, help="sequence lengths (the scale's)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--out", type=Path, help="also write the markdown here")
    args = p.parse_args(argv)
    s = dict(SCALES[args.scale])
    args.device = "cuda" if args.scale == "gpu" else "cpu"
    args.bf16 = args.scale == "gpu"
    if args.device == "cuda" and not gpu:
        p.error("--scale gpu needs a visible CUDA device")
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    sizes, seq_lens = args.sizes or s["sizes"], args.seq_lens or s["seq_lens"]
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    peak = device_peak(torch.device(args.device), s["peak_size"], dtype)
    rows = []
    for size in sizes:
        for seq_len in seq_lens:
            start = time.perf_counter()
            rows += measure(size, seq_len, s, args)
            print(f"[{size} x {seq_len}: {time.perf_counter() - start:.0f} s]", file=sys.stderr)
    text = markdown(rows, peak, args, s)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
