"""Small-scale check of EntiGraph synthetic continued pretraining (Yang et al. 2025;
papers/entigraph.md §5): the card's world of invented facts, a template generator, tiny models.

1. Pretrain a small causal model on BabyLM text (the general domain; its tokenizer serves all).
2. Write the world (``--docs`` documents, each fact stated once) and its closed-book questions.
3. Continue the model, the same steps, batch and seed in every arm, each with the card's 10%
   replay of BabyLM windows, on:
   - raw: the source documents themselves, repeated (many epochs);
   - rephrase: sentence-by-sentence template paraphrases of the documents, pass after pass, as
     many words as the EntiGraph corpus;
   - entigraph: the EntiGraph corpus (entities, every pair, the triples; compositions stated);
   - entigraph at fewer synthetic words (``--curve``): recall vs synthetic tokens;
   - entigraph without replay: general-text loss with and without replay.
4. Score closed-book QA (cloze and multiple choice, direct and composed; chance is 1/4) and the
   mean token loss on BabyLM validation windows.

The card expects EntiGraph to recall far more than raw repetition at equal training tokens,
recall to grow about log-linearly with synthetic tokens, and the BabyLM loss to be worse
without replay. Composed questions are stated in no source document, only in EntiGraph's text
(its one-hop compositions), so raw and rephrase can answer them only by composing facts.

The default world has 10 documents (about 95 facts), not the card's 30: on one CPU thread in
ten minutes, 150 steps over a 30-document world left every arm near chance (``--docs 30
--steps 150 --lr 2e-3 --curve 3000 20000`` reproduces that run), while 250 steps over 10
documents separate them.

Full run (one CPU thread, about 10 minutes; see BENCHMARKS.md):

    OMP_NUM_THREADS=1 python benchmarks/entigraph.py --data $THRIFTY_TEST_DATA \\
        --out bench-runs/entigraph.md

Smoke run (about a minute): ``--base-steps 30 --steps 20 --seeds 0 --curve 2000``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from thrifty.analysis.ensemble import token_nll
from thrifty.config import load_config
from thrifty.data.prepare import prepare
from thrifty.data.synthesize import synthesize
from thrifty.data.synthesize.world import write_world
from thrifty.data.tokens import TokenStore
from thrifty.eval import EVAL_TASKS, Scorer
from thrifty.runs import load_model
from thrifty.train.loop import train


def model_args(a: argparse.Namespace) -> list[str]:
    return [
        "model.size=nano", f"model.d_model={a.d_model}", f"model.n_layers={a.layers}",
        "model.n_heads=4", f"model.max_seq_len={a.seq_len}", f"data.seq_len={a.seq_len}",
        "train.eval_every=0", "train.log_every=1000", "train.checkpoint_every=0",
        "train.peak_flops=1e11", f"train.threads={a.threads}", f"runs_dir={a.work / 'runs'}",
    ]  # fmt: skip


def run_once(name: str, a: argparse.Namespace, extra: list[str]) -> Path:
    """Train (or reuse a finished) run; returns its folder."""
    run = a.work / "runs" / name
    if not (run / "checkpoints" / "latest").is_file():
        train(load_config(None, [f"name={name}", *model_args(a), *extra]))
    return run


def cpt(name: str, data: Path, a: argparse.Namespace, seed: int, replay: bool) -> Path:
    return run_once(name, a, [
        f"data.path={data}", f"train.init_from={a.work / 'runs' / 'base'}",
        "objective.name=replay", f"objective.data={a.work / 'babylm'}",
        "objective.windows=1000", f"objective.ratio={0.1111 if replay else 0}",
        "objective.replay_weight=0.1", "objective.constraint=none", "objective.valid_windows=0",
        f"train.batch_size={a.batch}", f"train.lr={a.lr}", "train.warmup_steps=10",
        f"train.max_steps={a.steps}", f"train.seed={seed}",
    ])  # fmt: skip


def measure(run: Path, a: argparse.Namespace) -> dict[str, float]:
    loaded = load_model(run)
    scorer = Scorer(loaded.model, loaded.tokenizer(), "causal")
    qa = EVAL_TASKS.build({"name": "closed_book_qa"})
    result = qa.evaluate(scorer, a.work / "world" / "closed_book_qa")
    sub = {k: v["score"] for k, v in result["subtasks"].items()}
    store = TokenStore(a.work / "babylm", "valid")
    loss = token_nll(loaded.model, store, a.seq_len, max_windows=a.eval_windows)["loss"]
    return {
        "direct": (sub["cloze_direct"] + sub["mc_direct"]) / 2,
        "composed": (sub["cloze_composed"] + sub["mc_composed"]) / 2,
        "all": result["score"],
        "babylm_loss": loss,
    }


def raw_data(a: argparse.Namespace) -> tuple[Path, int]:
    """The source documents, prepared with the base tokenizer. Training needs a validation
    split, so the source is written three times over and prepare holds out a copy or two:
    every document stays in training. Returns the folder and the documents' own tokens."""
    from thrifty.data.tokenizer import load_tokenizer

    raw, docs = a.work / "raw", a.work / "world" / "documents.jsonl"
    if not (raw / "manifest.json").is_file():
        (a.work / "raw-source").mkdir(exist_ok=True)
        thrice = a.work / "raw-source" / "documents.jsonl"
        thrice.write_text(docs.read_text() * 3)
        prepare([str(thrice)], raw, budget_words=None, valid_fraction=0.02,
                tokenizer_path=a.work / "babylm" / "tokenizer.json", progress=False)  # fmt: skip
    tok = load_tokenizer(a.work / "babylm" / "tokenizer.json")
    texts = [json.loads(x)["text"] for x in docs.read_text().splitlines()]
    return raw, sum(len(tok.encode(t, add_special_tokens=False).ids) + 1 for t in texts)


def synth(name: str, a: argparse.Namespace, **kw) -> tuple[Path, int]:
    out = a.work / name
    if not (out / "manifest.json").is_file():
        synthesize(a.work / "world", out, tokenizer_path=a.work / "babylm" / "tokenizer.json",
                   valid_fraction=0.02, **kw)  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    return out, int(manifest["tokens"]["train"])


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def fmt(xs: list[float], digits: int = 3) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.{digits}f}"
    return f"{mean(xs):.{digits}f} ({', '.join(f'{x:.{digits}f}' for x in xs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("THRIFTY_TEST_DATA", "")))
    ap.add_argument("--work", type=Path, default=Path("bench-runs/entigraph"))
    ap.add_argument("--out", type=Path, default=Path("bench-runs/entigraph.md"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--docs", type=int, default=10)
    ap.add_argument("--base-words", type=int, default=200_000)
    ap.add_argument("--base-steps", type=int, default=200)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=18)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--eval-windows", type=int, default=100)
    ap.add_argument("--curve", type=int, nargs="*", default=[3000, 15_000])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    babylm = a.work / "babylm"
    if not (babylm / "manifest.json").is_file():
        prepare([str(a.data / "babylm" / "sample_1M_dev")], babylm, budget_words=a.base_words,
                vocab_size=a.vocab_size, valid_fraction=0.02, seed=0, progress=False)  # fmt: skip
    base_args = [f"data.path={babylm}", f"train.max_steps={a.base_steps}", "train.batch_size=32",
                 "train.lr=3e-3", "train.warmup_steps=20"]  # fmt: skip
    run_once("base", a, base_args)
    if not (a.work / "world" / "documents.jsonl").is_file():
        write_world(a.work / "world", seed=0, docs=a.docs)
    raw, raw_tokens = raw_data(a)
    rows: dict[str, list[dict]] = {}
    tokens: dict[str, int] = {"raw": raw_tokens}
    base = measure(a.work / "runs" / "base", a)
    for seed in a.seeds:
        eg, tokens["entigraph"] = synth(f"entigraph-s{seed}", a, seed=seed)
        words = json.loads((eg / "manifest.json").read_text())["synthesize"]["synthetic_words"]
        rp, tokens["rephrase"] = synth(f"rephrase-s{seed}", a, seed=seed, method="rephrase",
                                       words=words)  # fmt: skip
        arms = {"raw": raw, "rephrase": rp, "entigraph": eg}
        for w in a.curve:
            arms[f"entigraph-{w}"], tokens[f"entigraph-{w}"] = synth(
                f"entigraph-{w}-s{seed}", a, seed=seed, words=w
            )
        for arm, data in arms.items():
            rows.setdefault(arm, []).append(measure(cpt(f"{arm}-s{seed}", data, a, seed, True), a))
        no_replay = cpt(f"entigraph-noreplay-s{seed}", eg, a, seed, False)
        rows.setdefault("entigraph, no replay", []).append(measure(no_replay, a))
    minutes = (time.perf_counter() - t0) / 60
    trained = a.steps * (a.batch + 2) * a.seq_len
    report(a, base, rows, tokens, trained, minutes)


def report(a, base, rows, tokens, trained, minutes) -> None:
    lines = [
        f"Seeds {a.seeds}; world of {a.docs} documents; every arm continues the same base model "
        f"for {a.steps} steps of {a.batch} + 2 replay rows x {a.seq_len} tokens "
        f"({trained:,} tokens, 10% BabyLM replay unless noted); {minutes:.1f} min in all.",
        "",
        "| arm | synthetic train tokens | epochs over them | recall, direct | recall, composed | "
        "BabyLM val loss |",
        "|---|---:|---:|---:|---:|---:|",
        f"| base (before CPT) | - | - | {base['direct']:.3f} | {base['composed']:.3f} | "
        f"{base['babylm_loss']:.3f} |",
    ]
    order = ["raw", "rephrase", *(f"entigraph-{w}" for w in a.curve), "entigraph",
             "entigraph, no replay"]  # fmt: skip
    seen = a.steps * a.batch * a.seq_len
    for arm in order:
        r = rows[arm]
        n = tokens.get(arm.split(",")[0], tokens["entigraph"])
        label = "raw source documents" if arm == "raw" else arm
        lines.append(
            f"| {label} | {n:,} | {seen / n:.1f} | {fmt([x['direct'] for x in r])} | "
            f"{fmt([x['composed'] for x in r])} | {fmt([x['babylm_loss'] for x in r])} |"
        )
    lines += ["", "Recall = mean of cloze and multiple-choice accuracy (4 choices: chance 0.25); "
              "per-seed values in parentheses."]  # fmt: skip
    curve = [(tokens[f"entigraph-{w}"], rows[f"entigraph-{w}"]) for w in a.curve]
    curve.append((tokens["entigraph"], rows["entigraph"]))
    plot = plot_curve(a, curve, tokens["raw"], rows["raw"])
    lines += ["", f"Plot: {plot}"]
    text = "\n".join(lines) + "\n"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    print(text)


def plot_curve(a, curve, raw_tokens, raw_rows) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    xs = [n for n, _ in curve]
    for key, label in (("direct", "direct"), ("composed", "composed")):
        ax.plot(
            xs, [mean([r[key] for r in rs]) for _, rs in curve], "o-", label=f"EntiGraph, {label}"
        )
        ax.plot([raw_tokens], [mean([r[key] for r in raw_rows])], "x", ms=9,
                label=f"raw documents, {label}")  # fmt: skip
    ax.axhline(0.25, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("synthetic training tokens")
    ax.set_ylabel("closed-book recall")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = a.out.with_suffix(".png")
    fig.savefig(path, dpi=120)
    return path


if __name__ == "__main__":
    main()
