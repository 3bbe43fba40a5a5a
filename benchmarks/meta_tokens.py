"""Meta-tokens with meta-attention vs a plain GPT: recall and held-out loss at 1x, 2x and 4x the
training length, with and without RoPE extension (small-scale check of Shah et al. 2025,
``papers/meta_tokens.md``).

Arms, each a `thrifty train` run of the same tiny RoPE GPT on the same windows for the same
steps and learning rate, over ``--seeds``:

- ``plain``: ``model.attention=mha``, ``objective=causal_lm``;
- ``meta``: ``model.attention=meta``, ``objective=meta_lm`` (an ``<m>`` at a random 1/16 of
  the positions in training; every 16th position in evaluation).

Part 1 trains on key-value recall in a haystack (``thrifty recall-task``: 4 pairs of 16 keys
and 8 values among filler, 4 queries; 32 tokens in training) and scores the queried values of
test files at each length (chance: 1/8); part 2 trains on BabyLM text and scores the mean loss on
held-out BabyLM windows of each length (the validation half of a 200k-word prepared sample of
``heldout``, never trained on). Both run `thrifty length-eval` with ``--rope`` none,
linear and yarn. Runs go two at a time (one thread each).

    python benchmarks/meta_tokens.py --data DATA_ROOT --out bench-runs/meta_tokens
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ARMS = {
    "plain": ["model.attention=mha", "objective={name: causal_lm}"],
    "meta": ["model.attention=meta", "objective={name: meta_lm, rate: 0.0625}"],
}
ROPE = "none,linear,yarn"


def thrifty(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "thrifty.cli.main", *args], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def train_and_score(name: str, overrides: list[str], score: list[str], work: Path) -> dict:
    run = work / "runs" / name
    if not (run / "eval" / "length.json").exists():
        thrifty("train", "configs/meta-recall.yaml", f"name={name}", f"runs_dir={work / 'runs'}",
                "train.threads=1", *overrides)  # fmt: skip
        thrifty("length-eval", str(run), "--rope", ROPE, "--threads", "1", *score)
    return json.loads((run / "eval" / "length.json").read_text())


def table(results: dict, key: str, lengths: list[int], digits: int) -> list[str]:
    head = "| arm | rope | " + " | ".join(f"{n} tokens" for n in lengths) + " |"
    lines = [head, "|" + "---|" * (2 + len(lengths))]
    for arm, runs in results.items():
        for rope in ROPE.split(","):
            cells = []
            for n in lengths:
                vals = [r[key][rope][str(n)] for r in runs]
                each = ", ".join(f"{v:.{digits}f}" for v in vals)
                cells.append(f"{statistics.mean(vals):.{digits}f} ({each})")
            lines.append(f"| {arm} | {rope} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, required=True, help="folder holding babylm/")
    ap.add_argument("--out", type=Path, default=Path("bench-runs/meta_tokens"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--text-seeds", default="0,1")
    ap.add_argument("--train-len", type=int, default=32, help="recall training length")
    ap.add_argument("--text-len", type=int, default=64, help="BabyLM training length")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--text-steps", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--parts", default="recall,text", help="which parts to run")
    args = ap.parse_args()  # fmt: skip
    work, T, L, parts = args.out, args.train_len, args.text_len, args.parts.split(",")
    lengths, text_lengths = [T, 2 * T, 4 * T], [L, 2 * L, 4 * L]
    model = ["model.d_model=64", "model.n_layers=2", "model.n_heads=2", "train.lr=3e-3",
             "train.eval_every=1000"]  # fmt: skip
    recall_shape = [f"model.max_seq_len={T}", f"data.seq_len={T}", "train.batch_size=64"]
    text_shape = [f"model.max_seq_len={L}", f"data.seq_len={L}", "train.batch_size=32"]
    recall, text, held = work / "recall", work / "text", work / "heldout"
    if not recall.exists() and "recall" in parts:
        thrifty("recall-task", "--out", str(recall), "--train-len", str(T), "--test-lens",
                ",".join(map(str, lengths)), "--examples", "60000", "--pairs", "4", "--queries",
                "4", "--keys", "16", "--values", "8", "--filler", "8", "--quiet")  # fmt: skip
    if not text.exists() and "text" in parts:
        thrifty("prepare", str(args.data / "babylm" / "sample_600k"), "--budget-words", "300000",
                "--vocab-size", "4096", "--out", str(text))  # fmt: skip
    if not held.exists() and "text" in parts:
        thrifty("prepare", str(args.data / "babylm" / "heldout"), "--budget-words", "200000",
                "--valid-fraction", "0.5", "--tokenizer", str(text / "tokenizer.json"),
                "--out", str(held))  # fmt: skip
    jobs = []
    for arm, arm_overrides in ARMS.items():
        for seed in args.seeds.split(",") if "recall" in parts else []:
            jobs.append(("recall", arm, f"recall-{arm}-s{seed}", [
                *model, *recall_shape, *arm_overrides, f"data.path={recall}", f"train.seed={seed}",
                f"train.max_steps={args.steps}"], ["--recall", str(recall)]))  # fmt: skip
        for seed in args.text_seeds.split(",") if "text" in parts else []:
            jobs.append(("text", arm, f"text-{arm}-s{seed}", [
                *model, *text_shape, *arm_overrides, f"data.path={text}", f"train.seed={seed}",
                f"train.max_steps={args.text_steps}"], ["--text", str(held)]))  # fmt: skip
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda j: (j[0], j[1], train_and_score(j[2], j[3], j[4], work)), jobs))
    results: dict[str, dict[str, list]] = {"recall": {}, "text": {}}
    for part, arm, result in done:
        results[part].setdefault(arm, []).append(result)
    lines = []
    if results["recall"]:
        lines += ["### Recall accuracy of the queried values (mean, then each seed)", "",
                  *table(results["recall"], "recall", lengths, 3), ""]  # fmt: skip
    if results["text"]:
        lines += ["### Held-out BabyLM loss (nats/token; mean, then each seed)", "",
                  *table(results["text"], "heldout_loss", text_lengths, 3)]  # fmt: skip
    (work / "meta_tokens.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
