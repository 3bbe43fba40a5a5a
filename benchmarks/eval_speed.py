"""BLiMP scoring speed: thrifty's batched scorer against what a user would run on the exported
``transformers`` model, in one invocation, with a check that every pair gets the same decision.

Run from the repository root::

    . .venv/bin/activate
    python benchmarks/eval_speed.py RUN --blimp DATA/blimp --pairs-per-paradigm 20   # quick
    python benchmarks/eval_speed.py RUN --blimp DATA/blimp --out eval_speed.md        # full

Contenders, scoring the same distinct sentences of the same BLiMP pairs:

* thrifty: ``thrifty.eval.scoring.score_sentences`` on the run's model (``load_model``):
  length-sorted, packed under ``--max-batch-tokens``, LM head only on scored positions; for
  ``mlm`` the masked copies of many sentences share each forward pass.
* reference, the run exported with ``thrifty.export.hf.export_hf``:
  - ``causal``: minicons' ``IncrementalLMScorer`` loaded from that local folder (the tool BabyLM
    participants score with), ``sequence_score`` on batches of ``--ref-batch`` sentences (64)
    with a sum reduction and its default ``bos_token=False`` (the exported tokenizer prepends
    ``<s>`` itself; see the README's scoring conventions).
  - ``mlm``: a padded, batched loop over ``transformers.LlamaForCausalLM``: every sentence's n
    masked copies (token t replaced by ``<mask>``), ``--ref-batch`` copies per forward, right
    padded, with a 4-D attention mask that lets each copy attend to its own real tokens in both
    directions (``LlamaForCausalLM`` uses a 4-D mask as given); log-softmax at the masked
    position, gather, sum per sentence. The same bidirectional network thrifty's ``mlm``
    backend runs: the Llama layout with the attention mask lifted.
  - ``mntp``: the same loop, with the prediction for the token masked at t read at t − 1
    (GPT-BERT's masked next-token prediction, thrifty's ``mntp`` backend).

Both run under ``torch.inference_mode`` on ``--threads`` threads in fp32 on the CPU. They take
turns paradigm by paradigm (which one goes first alternates), so bursts of load from other
processes on a shared machine hit both alike; each one's time is the sum over paradigms (both
pay their per-call set-up once per paradigm, i.e. 67 times on full BLiMP, and thrifty shares
prefixes only within a paradigm). ``--whole-task ROUNDS`` instead times each contender on the
whole task as it is used on it: thrifty in one call over every distinct sentence, as
``thrifty eval`` scores a task (length-sorted, packed and prefix-shared across paradigms), the
reference over the same sentences in task order, ``--ref-batch`` per call. Decisions (good >
bad, ties wrong) must agree pair by pair, and the largest score difference is reported. The
``mlm`` backend on a model trained for next-token or masked-next-token prediction is only a
speed workload; its accuracy means little.
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
def minicons_scores(scorer, sentences: list[str], batch: int) -> np.ndarray:
    """Summed log-probs from minicons' ``IncrementalLMScorer``, ``batch`` sentences per call."""
    out: list[float] = []
    for start in range(0, len(sentences), batch):
        part = sentences[start : start + batch]
        out += scorer.sequence_score(part, reduction=lambda x: x.sum(0).item())
    return np.array(out)


@torch.inference_mode()
def batched_pll_scores(
    model, tokenizer, sentences: list[str], batch: int, shift: int = 0
) -> np.ndarray:
    """Pseudo-log-likelihoods from padded batches of masked copies (see the module docstring),
    the token masked at t read at t − ``shift`` (0: mlm, 1: mntp)."""
    encoded = [tokenizer(s)["input_ids"] for s in sentences]  # <s> + tokens
    copies = [(i, t) for i, ids in enumerate(encoded) for t in range(1, len(ids))]
    out = np.zeros(len(sentences))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(copies), batch):
        part = copies[start : start + batch]
        width = max(len(encoded[i]) for i, _ in part)
        ids = torch.full((len(part), width), pad, dtype=torch.long)
        real = torch.zeros(len(part), width, dtype=torch.bool)
        for row, (i, _) in enumerate(part):
            ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
            real[row, : len(encoded[i])] = True
        rows = torch.arange(len(part))
        pos = torch.tensor([t for _, t in part])
        targets = ids[rows, pos].clone()
        ids[rows, pos] = MASK_ID
        mask = real[:, None, None, :].expand(-1, 1, width, -1)  # every query sees real keys
        logits = model(ids, attention_mask=mask).logits[rows, pos - shift]  # (n, V)
        logp = logits.log_softmax(-1).gather(1, targets[:, None])[:, 0]
        np.add.at(out, [i for i, _ in part], logp.double().numpy())
    return out


def reference_scores(refs: dict, sentences: list[str], backend: str, batch: int) -> np.ndarray:
    if backend == "causal":
        return minicons_scores(refs["minicons"], sentences, batch)
    shift = 1 if backend == "mntp" else 0
    return batched_pll_scores(refs["model"], refs["tokenizer"], sentences, batch, shift)


def decisions(pairs, index: dict[str, int], scores: np.ndarray) -> np.ndarray:
    return np.array([scores[index[p.good]] > scores[index[p.bad]] for p in pairs])


def result_row(backend, pairs, index: dict[str, int], ours, ref, seconds: dict) -> dict:
    """One table row: both contenders' times, their speed ratio and how their decisions agree."""
    mine, theirs = decisions(pairs, index, ours), decisions(pairs, index, ref)
    return {
        "backend": backend,
        "sentences": len(index),
        "ours_s": seconds["ours"],
        "ref_s": seconds["ref"],
        "speedup": seconds["ref"] / seconds["ours"],
        "mismatches": int((mine != theirs).sum()),
        "max_abs_diff": float(np.abs(ours - ref).max()),
        "accuracy": float(mine.mean()),
    }


def run_backend(backend, cap, loaded, refs, ref_batch, pairs, log_every) -> dict:
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
            ref[idx] = reference_scores(refs, group, backend, ref_batch)

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
                  f"thrifty {seconds['ours']:.0f}s, reference {seconds['ref']:.0f}s, "
                  f"{mismatches} decisions differ", flush=True)  # fmt: skip
    return result_row(backend, pairs, index, ours, ref, seconds)


def run_whole_task(backend, cap, loaded, refs, ref_batch, pairs, rounds: int) -> dict:
    """Both contenders on the whole task as each is used on it: thrifty in one call over every
    distinct sentence (what ``thrifty eval`` does: length-sorted and prefix-shared across all
    paradigms), the reference over the same sentences in task order, ``ref_batch`` per call
    (what a loop over a task's sentences with minicons does). ``rounds`` rounds, alternating
    which contender goes first; each one's time is its mean over the rounds."""
    sentences = list(dict.fromkeys(s for p in pairs for s in (p.good, p.bad)))
    index = {s: i for i, s in enumerate(sentences)}
    tok, scores = loaded.tokenizer(), {}
    seconds = {"ours": 0.0, "ref": 0.0}

    def thrifty():
        return score_sentences(loaded.model, tok, sentences, backend, max_batch_tokens=cap)

    def reference():
        return reference_scores(refs, sentences, backend, ref_batch)

    contenders = [("ours", thrifty), ("ref", reference)]
    for r in range(rounds):
        for name, fn in contenders if r % 2 == 0 else contenders[::-1]:
            start = time.perf_counter()
            scores[name] = np.asarray(fn(), dtype=np.float64)
            seconds[name] += (time.perf_counter() - start) / rounds
        so_far = rounds / (r + 1)
        print(f"  {backend}: round {r + 1}/{rounds}: thrifty {seconds['ours'] * so_far:.1f}s, "
              f"reference {seconds['ref'] * so_far:.1f}s", flush=True)  # fmt: skip
    ours, ref = scores["ours"], scores["ref"]
    return result_row(backend, pairs, index, ours, ref, seconds)


REFERENCES = {
    "causal": "minicons IncrementalLMScorer",
    "mlm": "batched padded HF loop",
    "mntp": "batched padded HF loop",
}


def table(rows: list[dict]) -> str:
    lines = [
        "| backend | reference | sentences | thrifty s | thrifty sent/s | reference s "
        "| reference sent/s | speedup "
        "| decisions differing | max abs score diff | pair accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n = r["sentences"]
        lines.append(
            f"| {r['backend']} | {REFERENCES[r['backend']]} | {n} | {r['ours_s']:.1f} "
            f"| {n / r['ours_s']:.0f} | "
            f"{r['ref_s']:.1f} | {n / r['ref_s']:.0f} | {r['speedup']:.1f}x | "
            f"{r['mismatches']} | {r['max_abs_diff']:.1e} | {100 * r['accuracy']:.1f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run or checkpoint folder (a causal or GPT-BERT model)")
    p.add_argument("--blimp", required=True, help="BLiMP folder of *.jsonl[.gz]")
    p.add_argument("--pairs-per-paradigm", type=int, help="seeded subsample (default: all)")
    p.add_argument("--backends", default="causal,mlm", help="comma-separated: causal, mlm, mntp")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-batch-tokens", type=int, default=CPU_BATCH_TOKENS)
    p.add_argument(
        "--ref-batch", type=int, default=64, help="sentences (causal) or copies (mlm) per call"
    )
    p.add_argument("--out", help="also write the markdown table here")
    p.add_argument("--log", type=int, default=10, help="progress line every N paradigms")
    p.add_argument(
        "--whole-task",
        type=int,
        metavar="ROUNDS",
        help="time each contender on the whole task as it is used on it (thrifty in one call, "
        "the reference in batches in task order), ROUNDS rounds, instead of paradigm by paradigm",
    )
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
        os.environ["HF_HUB_OFFLINE"] = "1"  # the exported folder only, never the Hub
        from minicons.scorer import IncrementalLMScorer

        reference = {
            "model": LlamaForCausalLM.from_pretrained(folder).eval(),
            "tokenizer": AutoTokenizer.from_pretrained(folder),
            "minicons": IncrementalLMScorer(str(folder), device="cpu"),
        }
        for backend in args.backends.split(","):
            common = (backend.strip(), args.max_batch_tokens, loaded, reference, args.ref_batch)
            if args.whole_task:
                row = run_whole_task(*common, pairs, args.whole_task)
            else:
                row = run_backend(*common, pairs, args.log)
            rows.append(row)
            print(table([row]), flush=True)
    m = loaded.model.cfg
    mode = f"whole task, {args.whole_task} rounds" if args.whole_task else "paradigm by paradigm"
    header = (
        f"model {loaded.run_dir.name} ({loaded.cfg.objective['name']}, "
        f"{loaded.model.num_params() / 1e6:.2f}M parameters, d_model {m.d_model}, "
        f"{m.n_layers} layers, vocab {m.vocab_size}), step {loaded.state.get('step')}; "
        f"{len(pairs)} BLiMP pairs, {mode}; "
        f"{args.threads} threads, max_batch_tokens "
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
