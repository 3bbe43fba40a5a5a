"""Small-scale check of BTX and BAM upcycling (papers/bam.md §4; Branch-Train-MiX, Sukhbaatar et
al. 2024; BAM, Zhang et al. 2024).

Branch: a dense seed with a parallel-attention block is pretrained briefly on mixed text, then
continued (``train.init_from``) on one domain each into three specialists:

- babylm: BabyLM text (``babylm/sample_1M_dev``, five genres), measured on ``babylm/heldout``
  (the same five genres; never trained on);
- wikitext: WikiText-2 (only its valid and test splits are stored): trained on ``valid``,
  measured on ``test``, the split WikiText reports results on;
- python: the standard library's own source files (``Path(os.__file__).parent/*.py``), every
  tenth file (in sorted order) held out for measurement, each file one document.

Mix: ``thrifty upcycle`` builds BTX (FFN experts, averaged attention), BAM (FFN + attention
experts) and BAM-KV (shared K/V) mixtures of the three, and each is trained on the union of the
three domains' training text, as is the dense seed ("continue dense"). Equal compute means equal
steps of equal tokens (batch x seq_len) in the same data order (same seed): every arm sees the
same words. The mixtures cost more per token (top-2 FFN experts; BAM runs every attention
expert), so the table reports FLOPs per token and in total, and "dense, BAM's FLOPs" continues
the seed for as many more steps as BAM's FLOPs per token allow. Per-domain loss is measured
right after initialisation and after training; all data share the seed's tokenizer.

The card expects the loss right after initialisation to be closer to the specialists' for BAM
than for BTX, and BAM <= BTX after equal steps (perhaps by a small margin at this scale).

Full run (4 layers, width 128, batch 16 x 128; seed ~3 min, each specialist and each mix arm
~2-3 min on two CPU cores; ~30 min in all):

    python benchmarks/upcycling.py --out upcycling.md

Smoke run (tiny everything, about a minute):

    python benchmarks/upcycling.py --smoke
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

from thrifty.analysis.ensemble import token_nll
from thrifty.config import load_config
from thrifty.data.prepare import prepare
from thrifty.data.tokens import TokenStore
from thrifty.runs import flops_per_token, load_model
from thrifty.train.loop import train
from thrifty.train.upcycle import upcycle

DOMAINS = ("babylm", "wikitext", "python")
GENRES = ("bnc_spoken", "childes", "gutenberg", "open_subtitles", "simple_wiki")
METHODS = ("btx", "bam", "bam-kv")
ARMS = (*METHODS, "dense", "dense-flops")
SMOKE = {
    "d_model": 64, "layers": 2, "heads": 2, "seq_len": 64, "batch_size": 8, "vocab_size": 1000,
    "seed_words": 20_000, "domain_words": 10_000, "heldout_words": 3_000, "seed_steps": 20,
    "specialist_steps": 10, "mix_steps": 10, "eval_windows": 8,
}  # fmt: skip


def _words(texts, limit: int) -> list[str]:
    """The first ``limit`` words of a stream of documents, as documents."""
    out, total = [], 0
    for text in texts:
        words = text.split()
        if not words:
            continue
        if total + len(words) > limit:  # cut the last one at whitespace, keeping its lines
            keep, n = [], total
            for line in text.splitlines():
                n += len(line.split())
                if n > limit:
                    break
                keep.append(line)
            text = "\n".join(keep)
        out.append(text)
        total += len(text.split())
        if total >= limit:
            break
    return out


def _gz(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read()


def _babylm(folder: Path, suffix: str, limit: int) -> list[str]:
    docs = []
    for genre in GENRES:  # equal words of every genre; 256-word lines become documents
        words = _gz(folder / f"{genre}{suffix}.train.gz").split()[: limit // len(GENRES)]
        docs += [" ".join(words[i : i + 256]) for i in range(0, len(words), 256)]
    return docs


def _python(held_out: bool) -> list[str]:
    files = sorted(Path(os.__file__).parent.glob("*.py"))
    chosen = [f for i, f in enumerate(files) if (i % 10 == 0) == held_out]
    return [f.read_text(encoding="utf-8", errors="replace") for f in chosen]


def write_raw(args: argparse.Namespace) -> dict[str, dict[str, Path]]:
    """Each domain's training and held-out text as a .jsonl file (one record per document, so
    code keeps its lines)."""
    wiki = args.data / "wikitext2"
    texts = {
        "babylm": (
            lambda n: _babylm(args.data / "babylm" / "sample_1M_dev", "_dev", n),
            lambda n: _babylm(args.data / "babylm" / "heldout", "_dev", n),
        ),
        "wikitext": (
            lambda n: _gz(wiki / "valid.txt.gz").splitlines(),
            lambda n: _gz(wiki / "test.txt.gz").splitlines(),
        ),
        "python": (lambda n: _python(False), lambda n: _python(True)),
    }
    paths: dict[str, dict[str, Path]] = {}
    for domain, (train_text, heldout_text) in texts.items():
        paths[domain] = {}
        for split, make, limit in (
            ("train", train_text, args.domain_words),
            ("heldout", heldout_text, args.heldout_words),
        ):
            path = args.work / "raw" / f"{domain}.{split}.jsonl"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                docs = _words(make(limit), limit)
                path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
            paths[domain][split] = path
    return paths


def prepare_all(args: argparse.Namespace, raw: dict) -> dict[str, Path]:
    """The seed's mixed data (whose tokenizer every other dataset reuses), each domain's
    training data, each domain's held-out data, and the union of the domains."""
    data = args.work / "data"

    def once(name: str, sources: list[Path], **kwargs) -> Path:
        out = data / name
        if not (out / "manifest.json").is_file():
            prepare([str(s) for s in sources], out, progress=False, seed=0, **kwargs)
        return out

    trains = [raw[d]["train"] for d in DOMAINS]
    seed_words = min(args.seed_words, 3 * args.domain_words)
    sets = {"seed": once("seed", trains, budget_words=seed_words, selection="sample",
                         vocab_size=args.vocab_size, valid_fraction=0.02)}  # fmt: skip
    reuse = {"budget_words": None, "tokenizer_path": sets["seed"] / "tokenizer.json"}
    for d in DOMAINS:
        sets[d] = once(d, [raw[d]["train"]], valid_fraction=0.02, **reuse)
        sets[f"eval-{d}"] = once(f"eval-{d}", [raw[d]["heldout"]], valid_fraction=0.0, **reuse)
    sets["union"] = once("union", trains, valid_fraction=0.02, **reuse)
    return sets


def settings(args: argparse.Namespace, steps: int, lr: float) -> list[str]:
    return [
        "model.size=nano", f"model.d_model={args.d_model}", f"model.n_layers={args.layers}",
        f"model.n_heads={args.heads}", f"model.max_seq_len={args.seq_len}", "model.block=parallel",
        f"data.seq_len={args.seq_len}", f"train.batch_size={args.batch_size}",
        f"train.max_steps={steps}", f"train.lr={lr}", f"train.warmup_steps={max(steps // 10, 1)}",
        f"train.seed={args.seed}", "train.eval_every=0", "train.eval_batches=4",
        "train.checkpoint_every=0", "train.log_every=25", "train.peak_flops=1e11",
        "eval.pathway_samples=0", f"train.device={args.device}", f"runs_dir={args.work / 'runs'}",
        *([f"train.threads={args.threads}"] if args.threads else []),
    ]  # fmt: skip


def timed_train(cfg) -> float:
    start = time.perf_counter()
    train(cfg, resume="auto")  # a finished run is left as it is: reruns resume the script
    return time.perf_counter() - start


def measure(run: Path, sets: dict, args: argparse.Namespace, **row) -> dict:
    loaded = load_model(run, args.device)
    row |= {
        "params": loaded.model.num_params(),
        "flops": flops_per_token(loaded.state, loaded.cfg),
    }
    for d in DOMAINS:
        store = TokenStore(sets[f"eval-{d}"], "train")
        nll = token_nll(loaded.model, store, args.seq_len, max_windows=args.eval_windows)
        row[d] = nll["loss"]
    print(json.dumps(row), flush=True)
    return row


def run_all(args: argparse.Namespace) -> list[dict]:
    sets = prepare_all(args, write_raw(args))
    runs = args.work / "runs"

    def trained(label: str, stage: str, steps: int, lr: float, *overrides: str, path=None):
        cfg = load_config(path, [*settings(args, steps, lr), *overrides])
        seconds = timed_train(cfg)
        return cfg.run_dir, measure(cfg.run_dir, sets, args, model=label, stage=stage,
                                    steps=steps, seconds=seconds)  # fmt: skip

    seed, row = trained("seed (dense)", "pretrained", args.seed_steps, args.seed_lr,
                        "name=seed", f"data.path={sets['seed']}")  # fmt: skip
    rows, specialists, branch = [row], [], f"train.init_from={seed}"
    for d in DOMAINS:
        run, row = trained(f"specialist: {d}", "branched", args.specialist_steps, args.lr,
                           f"name={d}", f"data.path={sets[d]}", branch)  # fmt: skip
        rows.append(row)
        specialists.append(run)
    union = f"data.path={sets['union']}"
    flops = {"dense": rows[0]["flops"]}
    for method in (m for m in METHODS if m in args.arms):
        init = runs / f"{method}-init"
        if not init.exists():
            upcycle(seed, specialists, init, method=method, top_k=args.top_k, seed=0)
        rows.append(measure(init, sets, args, model=method, stage="initialised"))
        flops[method] = rows[-1]["flops"]
        # the written config holds the mixture's model section and train.init_from=init
        path = init / "config.yaml"
        rows.append(trained(method, "trained", args.mix_steps, args.lr, f"name={method}", union,
                            path=path)[1])  # fmt: skip
    if "dense" in args.arms:
        rows.append(trained("continue dense", "trained", args.mix_steps, args.lr,
                            "name=dense", union, branch)[1])  # fmt: skip
    if "dense-flops" in args.arms:  # as many steps as the costliest mixture's FLOPs buy
        steps = round(args.mix_steps * max(flops.values()) / flops["dense"])
        label = "continue dense, top mixture's FLOPs"
        rows.append(trained(label, "trained", steps, args.lr, "name=dense-flops", union,
                            branch)[1])  # fmt: skip
    return rows


def table(rows: list[dict], args: argparse.Namespace) -> str:
    tokens = args.batch_size * args.seq_len
    own = {d: next(r[d] for r in rows if r["model"] == f"specialist: {d}") for d in DOMAINS}
    lines = [
        "| model | stage | params (M) | MFLOPs/token | steps | train FLOPs | "
        + " | ".join(DOMAINS) + " | mean | gap to specialists | train s |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * (len(DOMAINS) + 3),
    ]  # fmt: skip
    for r in [*rows, {"model": "specialists, each on its own domain", "stage": "", **own}]:
        mean = sum(r[d] for d in DOMAINS) / len(DOMAINS)
        gap = mean - sum(own.values()) / len(DOMAINS)
        steps = r.get("steps")
        cells = [
            r["model"], r["stage"],
            f"{r['params'] / 1e6:.2f}" if "params" in r else "",
            f"{r['flops'] / 1e6:.1f}" if "flops" in r else "",
            str(steps or ""),
            f"{r['flops'] * tokens * steps:.2e}" if steps else "",
            *(f"{r[d]:.3f}" for d in DOMAINS), f"{mean:.3f}", f"{gap:+.3f}",
            f"{r['seconds']:.0f}" if "seconds" in r else "",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Validation loss (nats/token) on {args.eval_windows} held-out windows of {args.seq_len} "
        f"tokens per domain. Every mix arm trains on the union of the domains with batches of "
        f"{tokens} tokens in one data order; 'continue dense, top mixture's FLOPs' gets the "
        "steps that match the costliest mixture's training FLOPs.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    shared = os.environ.get("THRIFTY_TEST_DATA") or Path(__file__).parents[1] / "../shared/data"
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(shared),
        help="folder with babylm/ and wikitext2/ (default $THRIFTY_TEST_DATA)",
    )
    ap.add_argument("--work", type=Path, help="default bench-runs/upcycling[-smoke]")
    ap.add_argument("--smoke", action="store_true", help="tiny everything: a check that it runs")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--seed-words", type=int, default=300_000, help="the seed's mixed text")
    ap.add_argument("--domain-words", type=int, default=150_000, help="training words per domain")
    ap.add_argument("--heldout-words", type=int, default=30_000, help="measured words per domain")
    ap.add_argument("--seed-steps", type=int, default=240)
    ap.add_argument("--specialist-steps", type=int, default=150)
    ap.add_argument("--mix-steps", type=int, default=150, help="steps of every mix arm")
    ap.add_argument("--seed-lr", type=float, default=3e-3)
    ap.add_argument("--lr", type=float, default=1e-3, help="specialists and mix arms")
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--eval-windows", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    args.work = args.work or Path("bench-runs") / ("upcycling-smoke" if args.smoke else "upcycling")
    text = table(run_all(args), args)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
