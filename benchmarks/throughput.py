"""Training throughput on CPU: thrifty's training step against a plain PyTorch loop over HF Llama.

Run from the repository root (defaults: about 2.5 minutes on 2 cores; --compile adds ~1.5)::

    . .venv/bin/activate
    python benchmarks/throughput.py                    # HF reference vs thrifty (eager)
    python benchmarks/throughput.py --compile --out throughput.md   # + thrifty under torch.compile

Contenders, built in the same process with the same dimensions, init seed, batches and order:

* HF: ``transformers.LlamaForCausalLM`` (sdpa attention, tied embeddings, no KV cache) trained by
  the loop anyone would write: logits, ``F.cross_entropy``, backward, clip_grad_norm_(1.0),
  ``torch.optim.AdamW`` (fused, as HF's Trainer builds it by default; same lr / betas / eps /
  weight decay, decaying every parameter) and zero_grad(set_to_none=True).
* thrifty (eager): the per-step path of ``thrifty.train.loop``: ``Transformer(ModelConfig(
  size=...))``, the ``causal_lm`` objective on a ``Batch`` of (B, T+1) ids, backward,
  clip_grad_norm_(1.0), ``build_optimizer`` as the loop builds it (fused AdamW), zero_grad.
* thrifty + torch.compile (``--compile``): the same, with the model wrapped in ``torch.compile``
  as ``train.compile: true`` does, and the reference compiled the same way: HF Llama +
  torch.compile (the model wrapped in ``torch.compile``, the loop unchanged). Compilation
  happens before timing; if it fails, the row says why and the rest still runs.

Like with like: each thrifty row is compared with the HF row of the same mode (eager with
eager, compiled with compiled); a speed-up against the other mode is not reported.

Reference config (the defaults): size ``mini`` = 4 layers, width 256, 4 heads, d_ff 704; vocab
8192; batch 32 x 128 tokens; fp32; 2 threads. Data: random ids from a fixed seed, or random
windows of a prepared dataset's train split with ``--data PATH`` (its vocabulary then applies).

MFU = FLOPs/token x tokens/s / peak. FLOPs/token = 6 x (matmul weights incl. the tied LM head) +
12 x layers x seq_len x width (PaLM; ``Transformer.flops_per_token``; the same formula is applied
to the HF model's weights). Peak = the best FLOP/s of a square matmul (``--peak-size``) in
the run's precision (fp32; bf16 with ``--bf16``) measured on this machine in this run, best of
``--peak-repeats`` at the start of every round, so MFU is against the fastest the machine
showed (conservative when load comes and goes).

Timing: each round runs ``--warmup`` unmeasured steps per contender, then ``--steps`` measured
steps alternating between contenders step by step (A, B, A, B, ...; the order rotates each
round), so a burst of load from other processes hits every contender alike. A round's tokens/s
is tokens per step / its median step time; the table gives the median over ``--rounds``
rounds, their min-max, the wall throughput of all measured steps, and the per-round ratios to
HF. The numbers of record and how noisy this machine is: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from thrifty.config import ModelConfig, TrainConfig
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.train.optim import build_optimizer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="mini", help="thrifty ModelConfig size preset (default: mini)")
    p.add_argument("--vocab", type=int, default=8192, help="vocabulary (ignored with --data)")
    p.add_argument("--batch", type=int, default=32, help="sequences per step")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument(
        "--warmup", type=int, default=3, help="unmeasured steps at the start of each round"
    )
    p.add_argument("--steps", type=int, default=15, help="measured steps per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--compile", action="store_true", help="also measure both under torch.compile")
    p.add_argument("--no-hf", action="store_true", help="skip the HF reference")
    p.add_argument("--no-eager", action="store_true", help="skip eager thrifty")
    p.add_argument("--data", type=Path, default=None, help="prepared dataset folder (real tokens)")
    p.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    p.add_argument("--seed", type=int, default=0, help="seed for init and random data")
    p.add_argument("--peak-size", type=int, default=2048, help="side of the square peak matmul")
    p.add_argument("--peak-repeats", type=int, default=8, help="timed peak matmuls per round")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    p.add_argument("--device", default="cpu", help="where both contenders train (cpu, cuda)")
    p.add_argument(
        "--bf16", action="store_true", help="bf16 autocast in both (as thrifty does on GPUs)"
    )
    return p.parse_args(argv)


def precision(args) -> torch.dtype:
    """The dtype the contenders' matmuls run in, and so the peak's."""
    return torch.bfloat16 if args.bf16 else torch.float32


def autocast(args):
    """bf16 autocast on ``args.device`` with ``--bf16``, else nothing (fp32)."""
    if not args.bf16:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16)


# ---------------------------------------------------------------------------- peak and data


def matmul_peak(n: int, repeats: int, dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of ``repeats`` (n x n) @ (n x n) matmuls in ``dtype``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    out = torch.empty(n, n, dtype=dtype)
    torch.mm(a, b, out=out)  # wake the BLAS threads, fault in the pages
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def make_batches(args: argparse.Namespace) -> tuple[list[torch.Tensor], int, str]:
    """``args.batches`` (B, T+1) int64 id tensors, the vocabulary size, and where they came from."""
    B, T = args.batch, args.seq_len
    if args.data is None:
        gen = torch.Generator().manual_seed(args.seed)
        batches = [
            torch.randint(0, args.vocab, (B, T + 1), generator=gen) for _ in range(args.batches)
        ]
        return batches, args.vocab, f"random ids (seed {args.seed})"
    from thrifty.data.prepare import load_manifest
    from thrifty.data.tokens import TokenStore

    vocab = load_manifest(args.data)["vocab_size"]
    store = TokenStore(args.data, "train")
    n = store.num_windows(T)
    gen = torch.Generator().manual_seed(args.seed)
    picks = torch.randperm(n, generator=gen)[: B * args.batches]
    if len(picks) < B * args.batches:
        sys.exit(f"{args.data}: only {n} windows of {T} tokens, need {B * args.batches}")
    batches = [store.windows(picks[i * B : (i + 1) * B].numpy(), T) for i in range(args.batches)]
    return batches, vocab, f"{args.data} (train split, {args.batches * B} random windows)"


# ---------------------------------------------------------------------------- contenders


@dataclass
class Contender:
    name: str
    step: Callable[[torch.Tensor], float]
    """One optimizer step on a (B, T+1) batch; returns the loss."""
    flops_per_token: float
    params: int
    setup_s: float = 0.0
    rounds: list[list[float]] = field(default_factory=list)
    """Seconds of each measured step, per round."""
    last_loss: float = float("nan")
    compiled: bool = False

    def tokens_per_s(self, tokens: int) -> list[float]:
        """Per round: tokens / median step time (robust to a stray slow step)."""
        return [tokens / statistics.median(times) for times in self.rounds]

    def wall_tokens_per_s(self, tokens: int) -> float:
        """All measured tokens / all measured time (slow steps included)."""
        return tokens * sum(map(len, self.rounds)) / sum(map(sum, self.rounds))


def thrifty_contender(args, vocab: int, compile: bool) -> Contender:
    """thrifty's per-step path, as in ``thrifty.train.loop.train`` (fp32, one micro-batch)."""
    torch.manual_seed(args.seed)
    cfg = ModelConfig(size=args.size, vocab_size=vocab, max_seq_len=args.seq_len)
    device = torch.device(args.device)
    model = Transformer(cfg).to(device)
    forward_model = torch.compile(model) if compile else model
    objective = OBJECTIVES.build({"name": "causal_lm"}, forward_model, seed=args.seed)
    tc = TrainConfig(max_steps=1)
    optimizer = build_optimizer(model, tc, device)  # as the loop builds it: fused AdamW
    model.train()

    def step(ids: torch.Tensor) -> float:
        with autocast(args):
            out = objective(Batch(ids.to(device, non_blocking=True)))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(out.metrics["loss"])  # read every step, as the HF loop does

    name = "thrifty + torch.compile" if compile else "thrifty (eager)"
    flops = model.flops_per_token(args.seq_len)
    return Contender(name, step, flops, model.num_params(), compiled=compile)


def hf_contender(args, vocab: int, compile: bool = False) -> Contender:
    """A plain PyTorch loop over ``LlamaForCausalLM`` with thrifty's dimensions; ``compile``
    wraps the model in ``torch.compile``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    m = ModelConfig(size=args.size, vocab_size=vocab, max_seq_len=args.seq_len)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=m.d_model,
        intermediate_size=m.d_ff,
        num_hidden_layers=m.n_layers,
        num_attention_heads=m.n_heads,
        num_key_value_heads=m.n_heads,
        max_position_embeddings=args.seq_len,
        rms_norm_eps=m.norm_eps,
        rope_theta=m.rope_theta,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        use_cache=False,  # a training loop has no use for a KV cache
        attn_implementation="sdpa",
    )
    device = torch.device(args.device)
    model = LlamaForCausalLM(config).to(device)
    assert model.lm_head.weight is model.model.embed_tokens.weight, "embeddings must be tied"
    tc = TrainConfig(max_steps=1)
    # fused, as HF's Trainer builds it by default (optim="adamw_torch_fused" on torch >= 2.8)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=tc.lr,
        betas=tc.betas,
        eps=tc.eps,
        weight_decay=tc.weight_decay,
        fused=True,
    )
    model.train()

    # Same PaLM formula as Transformer.flops_per_token: every block linear + the tied head.
    linears = sum(
        mod.weight.numel()
        for mod in model.model.layers.modules()
        if isinstance(mod, torch.nn.Linear)
    )
    flops = (
        6.0 * (linears + model.lm_head.weight.numel())
        + 12.0 * m.n_layers * args.seq_len * m.d_model
    )

    forward_model = torch.compile(model) if compile else model

    def step(ids: torch.Tensor) -> float:
        ids = ids.to(device, non_blocking=True)
        with autocast(args):
            logits = forward_model(input_ids=ids[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    name = "HF Llama + torch.compile" if compile else "HF Llama (plain loop)"
    params = sum(p.numel() for p in model.parameters())
    return Contender(name, step, flops, params, compiled=compile)


def run_round(contenders: list[Contender], batches: list[torch.Tensor], args) -> None:
    """Warm-up, then measured steps alternating between contenders step by step (A, B, A, B...),
    so a burst of load from another process hits every contender alike."""
    for i in range(args.warmup):
        for c in contenders:
            c.last_loss = c.step(batches[i % len(batches)])
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for i in range(args.steps):
        for c in contenders:
            start = time.perf_counter()
            c.last_loss = c.step(batches[i % len(batches)])
            times[c.name].append(time.perf_counter() - start)
    for c in contenders:
        c.rounds.append(times[c.name])


# ---------------------------------------------------------------------------- report


def report(args, contenders: list[Contender], peaks: list[float], skipped: dict, data: str) -> str:
    peak, tokens = max(peaks), args.batch * args.seq_len
    dtype = "bf16" if args.bf16 else "fp32"
    mode = f"{dtype} autocast" if args.bf16 else dtype
    references = {c.compiled: c for c in contenders if c.name.startswith("HF")}
    lines = [
        f"torch {torch.__version__}, {os.cpu_count()} CPUs ({platform.machine()}), "
        f"{torch.get_num_threads()} threads, {mode}; batch {args.batch} x {args.seq_len} tokens; "
        f"{args.rounds} rounds x ({args.warmup} warm-up + {args.steps} measured steps per "
        f"contender), interleaved step by step; data: {data}",
        "",
        f"{dtype} matmul peak ({args.peak_size}^3, best of {args.peak_repeats} per round): "
        f"**{peak / 1e9:.1f} GFLOP/s** (per round: "
        + ", ".join(f"{p / 1e9:.1f}" for p in peaks)
        + ")",
        "",
        "tokens/s: per round, tokens per step / median step time; the table gives the median "
        "over rounds, its min-max, and all measured tokens / all measured time (wall).",
        "",
        "MFU: against the best peak of the run; in brackets, the median over rounds of MFU "
        "against that round's own peak (the machine's speed drifts when its host is busy).",
        "",
        "| contender | params | MFLOPs/token | tokens/s | min-max | wall tokens/s | MFU "
        "| vs HF in the same mode (per round) |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in contenders:
        rounds = c.tokens_per_s(tokens)
        med = statistics.median(rounds)
        round_mfu = statistics.median(c.flops_per_token * t / p for t, p in zip(rounds, peaks))
        ratio = "-"
        hf = references.get(c.compiled)
        if hf is not None and hf is not c:
            hf_rounds = hf.tokens_per_s(tokens)
            per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(rounds, hf_rounds))
            ratio = f"**{med / statistics.median(hf_rounds):.2f}x** ({per_round})"
        lines.append(
            f"| {c.name} | {c.params / 1e6:.2f}M | {c.flops_per_token / 1e6:.1f} | {med:,.0f} "
            f"| {min(rounds):,.0f}-{max(rounds):,.0f} | {c.wall_tokens_per_s(tokens):,.0f} "
            f"| {c.flops_per_token * med / peak:.2f} ({round_mfu:.2f}) | {ratio} |"
        )
    for name, why in skipped.items():
        lines.append(f"| {name} | | | skipped: {why} | | | | |")
    setup = [f"{c.name} {c.setup_s:.0f}s" for c in contenders]
    lines += ["", "Setup incl. the first (compiling) step, not timed: " + "; ".join(setup)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    batches, vocab, data = make_batches(args)
    tokens = args.batch * args.seq_len

    builders: list[tuple[str, Callable[[], Contender]]] = []
    if not args.no_hf and not args.no_eager:
        builders.append(("HF Llama (plain loop)", lambda: hf_contender(args, vocab)))
    if not args.no_eager:
        builders.append(("thrifty (eager)", lambda: thrifty_contender(args, vocab, compile=False)))
    if args.compile and not args.no_hf:
        builders.append(
            ("HF Llama + torch.compile", lambda: hf_contender(args, vocab, compile=True))
        )
    if args.compile:
        builders.append(
            ("thrifty + torch.compile", lambda: thrifty_contender(args, vocab, compile=True))
        )

    contenders: list[Contender] = []
    skipped: dict[str, str] = {}
    for name, build in builders:
        start = time.perf_counter()
        try:
            c = build()
            c.last_loss = c.step(batches[0])  # first step: compiles, allocates optimizer state
        except Exception as e:  # noqa: BLE001 - compile failures vary; report and go on
            if "compile" not in name:
                raise
            traceback.print_exc()
            first_line = (str(e).splitlines() or [""])[0][:120]
            skipped[name] = f"{type(e).__name__}: {first_line}"
            continue
        c.setup_s = time.perf_counter() - start
        contenders.append(c)
        print(f"# {name}: ready in {c.setup_s:.1f}s, first loss {c.last_loss:.3f}", file=sys.stderr)

    peaks: list[float] = []
    for r in range(args.rounds):
        peaks.append(matmul_peak(args.peak_size, args.peak_repeats, precision(args)))
        shift = r % max(len(contenders), 1)
        run_round(contenders[shift:] + contenders[:shift], batches, args)  # rotate order
        summary = ", ".join(f"{c.name} {c.tokens_per_s(tokens)[-1]:,.0f} tok/s" for c in contenders)
        print(
            f"# round {r + 1}/{args.rounds}: peak {peaks[-1] / 1e9:.1f} GFLOP/s; {summary}",
            file=sys.stderr,
        )

    table = report(args, contenders, peaks, skipped, data)
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
