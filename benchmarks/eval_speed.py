"""BLiMP scoring speed: thrifty's batched scorer against a per-sentence loop over the exported
``transformers`` model, in one invocation, with a check that every pair gets the same decision.

Run from the repository root::

    . .venv/bin/activate
    python benchmarks/eval_speed.py RUN --blimp DATA/blimp --pairs-per-paradigm 20   # quick
    python benchmarks/eval_speed.py RUN --blimp DATA/blimp --out eval_speed.md        # full

Contenders, scoring the same distinct sentences of the same BLiMP pairs:

* thrifty: ``thrifty.eval.scoring.score_sentences`` on the run's model (``load_model``):
  length-sorted, packed under ``--max-batch-tokens``, LM head only on scored positions; for
  ``mlm`` the masked copies of many sentences share each forward pass.
* reference: the run exported with ``thrifty.export.hf.export_hf`` and loaded as
  ``transformers.LlamaForCausalLM`` + ``AutoTokenizer`` from that local folder, then the loop
  anyone would write: for each sentence, tokenize (the exported tokenizer prepends ``<s>``),
  one forward, ``log_softmax`` over the full logits, gather, sum. For ``mlm`` the loop builds
  that sentence's n masked copies (token t replaced by ``<mask>``), runs them as one batch with a
  4-D all-True attention mask, which makes ``LlamaForCausalLM`` attend bidirectionally (a 4-D
  mask is used as given), and reads position t of copy t. This is the same bidirectional
  network thrifty's ``mlm`` backend runs: the Llama layout with the attention mask lifted.

Both run under ``torch.inference_mode`` on ``--threads`` threads in fp32 on the CPU. They take
turns paradigm by paradigm (which one goes first alternates), so bursts of load from other
processes on a shared machine hit both alike; each one's time is the sum over paradigms (thrifty
pays its per-call set-up once per paradigm, i.e. 67 times on full BLiMP, and shares prefixes only
within a paradigm). Decisions (good > bad, ties wrong) must agree pair by pair, and the largest
score difference is reported. The ``mlm`` backend on a model trained for next-token or
masked-next-token prediction is only a speed workload; its accuracy means little.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from thrifty.data.tokenizer import MASK_ID
from thrifty.eval.minimal_pairs import read_pairs
from thrifty.eval.scoring import CPU_BATCH_TOKENS, score_sentences
from thrifty.export.hf import export_hf
from thrifty.runs import load_model


@torch.inference_mode()
def reference_scores(model, tokenizer, sentences: list[str], backend: str) -> np.ndarray:
    """One sentence at a time through the exported HF model (see the module docstring)."""
    out = np.zeros(len(sentences))
    for i, sentence in enumerate(sentences):
        ids = torch.tensor(tokenizer(sentence)["input_ids"])  # <s> + tokens
        n = len(ids) - 1
        if n == 0:
            continue
        if backend == "causal":
            logp = model(ids[None]).logits[0, :-1].log_softmax(-1)  # (n, V)
        else:
            copies = ids.repeat(n, 1)  # (n, n+1); copy t masks token t+1
            rows, pos = torch.arange(n), torch.arange(1, n + 1)
            copies[rows, pos] = MASK_ID
            bidirectional = torch.ones(n, 1, n + 1, n + 1, dtype=torch.bool)
            logits = model(copies, attention_mask=bidirectional).logits  # (n, n+1, V)
            logp = logits[rows, pos].log_softmax(-1)
        out[i] = logp.gather(1, ids[1:, None]).sum().item()
    return out


def decisions(pairs, index: dict[str, int], scores: np.ndarray) -> np.ndarray:
    return np.array([scores[index[p.good]] > scores[index[p.bad]] for p in pairs])


def run_backend(backend, cap, loaded, hf_model, hf_tok, pairs, log_every) -> dict:
    """Both contenders, one paradigm at a time, alternating which goes first, so that load
    from other processes hits both alike; times are summed over paradigms."""
    by_paradigm: dict[str, list] = {}
    for p in pairs:
        by_paradigm.setdefault(p.paradigm, []).append(p)
    sentences = list(dict.fromkeys(s for p in pairs for s in (p.good, p.bad)))
    index = {s: i for i, s in enumerate(sentences)}
    ours, ref = np.zeros(len(sentences)), np.zeros(len(sentences))
    seconds = {"ours": 0.0, "ref": 0.0}
    tok, done, mismatches = loaded.tokenizer(), set(), 0
    for i, paradigm in enumerate(by_paradigm.values()):
        group = [s for p in paradigm for s in (p.good, p.bad)]
        group = [s for s in dict.fromkeys(group) if s not in done]  # each sentence once
        done.update(group)
        idx = [index[s] for s in group]

        def thrifty(group=group, idx=idx):
            ours[idx] = score_sentences(loaded.model, tok, group, backend, max_batch_tokens=cap)

        def reference(group=group, idx=idx):
            ref[idx] = reference_scores(hf_model, hf_tok, group, backend)

        contenders = [("ours", thrifty), ("ref", reference)]
        for name, fn in contenders if i % 2 == 0 else contenders[::-1]:
            start = time.perf_counter()
            fn()
            seconds[name] += time.perf_counter() - start
        mismatches += int(
            (decisions(paradigm, index, ours) != decisions(paradigm, index, ref)).sum()
        )
        if log_every and (i + 1) % log_every == 0:
            print(f"  {backend}: {i + 1}/{len(by_paradigm)} paradigms, {len(done)} sentences, "
                  f"thrifty {seconds['ours']:.0f}s, HF loop {seconds['ref']:.0f}s, "
                  f"{mismatches} decisions differ", flush=True)  # fmt: skip
    mine, theirs = decisions(pairs, index, ours), decisions(pairs, index, ref)
    return {
        "backend": backend,
        "sentences": len(sentences),
        "ours_s": seconds["ours"],
        "ref_s": seconds["ref"],
        "speedup": seconds["ref"] / seconds["ours"],
        "mismatches": int((mine != theirs).sum()),
        "max_abs_diff": float(np.abs(ours - ref).max()),
        "accuracy": float(mine.mean()),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| backend | sentences | thrifty s | thrifty sent/s | HF loop s | HF loop sent/s | speedup "
        "| decisions differing | max abs score diff | pair accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n = r["sentences"]
        lines.append(
            f"| {r['backend']} | {n} | {r['ours_s']:.1f} | {n / r['ours_s']:.0f} | "
            f"{r['ref_s']:.1f} | {n / r['ref_s']:.0f} | {r['speedup']:.1f}x | "
            f"{r['mismatches']} | {r['max_abs_diff']:.1e} | {100 * r['accuracy']:.1f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run or checkpoint folder (a causal or GPT-BERT model)")
    p.add_argument("--blimp", required=True, help="BLiMP folder of *.jsonl[.gz]")
    p.add_argument("--pairs-per-paradigm", type=int, help="seeded subsample (default: all)")
    p.add_argument("--backends", default="causal,mlm", help="comma-separated: causal, mlm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-batch-tokens", type=int, default=CPU_BATCH_TOKENS)
    p.add_argument("--out", help="also write the markdown table here")
    p.add_argument("--log", type=int, default=10, help="progress line every N paradigms")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    loaded = load_model(args.run, "cpu")
    load_start, started = os.getloadavg()[0], time.strftime("%H:%M")
    from transformers import AutoTokenizer, LlamaForCausalLM

    pairs = read_pairs(args.blimp, max_pairs_per_paradigm=args.pairs_per_paradigm)
    print(f"{len(pairs)} pairs", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_hf(args.run, Path(tmp) / "hf")
        hf_model = LlamaForCausalLM.from_pretrained(folder).eval()
        hf_tok = AutoTokenizer.from_pretrained(folder)
        for backend in args.backends.split(","):
            row = run_backend(
                backend.strip(), args.max_batch_tokens, loaded, hf_model, hf_tok, pairs, args.log
            )
            rows.append(row)
            print(table([row]), flush=True)
    m = loaded.model.cfg
    header = (
        f"model {loaded.run_dir.name} ({loaded.cfg.objective['name']}, "
        f"{loaded.model.num_params() / 1e6:.2f}M parameters, d_model {m.d_model}, "
        f"{m.n_layers} layers, vocab {m.vocab_size}), step {loaded.state.get('step')}; "
        f"{len(pairs)} BLiMP pairs; {args.threads} threads, max_batch_tokens "
        f"{args.max_batch_tokens}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, Python {sys.version.split()[0]}; "
        f"ran {started}-{time.strftime('%H:%M')}, 1-minute load average {load_start:.1f} at the "
        f"start and {os.getloadavg()[0]:.1f} at the end"
    )
    report = f"{header}\n\n{table(rows)}\n"
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report)
    return 0 if all(r["mismatches"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
