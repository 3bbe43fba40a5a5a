"""MiniGrid frames: PPO on frozen Slot Attention slots vs a CNN from scratch vs a frozen CNN
autoencoder, at the same environment-step budget (the small-scale check of OCR-RL, Yoon et al.
2023, ``papers/ocr_rl.md``).

Prepares ``images:minigrid-frames`` (random-policy frames of the agent's 28x28 view), trains
``configs/slot-ae-minigrid.yaml`` and a CNN autoencoder on them, then runs `thrifty ppo-pixels`
per arm and seed, evaluating success and return on held-out levels every ``--eval-every``
steps. Prints a markdown section (also written to ``--section``) with the pretraining losses
and, per arm, success and return before any step, at the end, and averaged over the curve.

    OMP_NUM_THREADS=1 python benchmarks/slots_minigrid.py --out bench-runs/slots
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ARMS = ("slots", "cnn", "cnn-ae")
CONFIG = str(Path(__file__).parents[1] / "configs" / "slot-ae-minigrid.yaml")


def pretrain(args) -> tuple[Path, Path, dict]:
    """The frames, the slot_ae run and the CNN autoencoder folder (made once, then reused)."""
    from thrifty.cli.main import main as thrifty
    from thrifty.rl.cnn_ae import pretrain_cnn_ae

    frames, slots, ae = args.out / "frames", args.out / "runs" / "slot-ae", args.out / "cnn-ae"
    timing = args.out / "pretrain-seconds.json"
    seconds = json.loads(timing.read_text()) if timing.exists() else {}
    began = time.perf_counter()
    if not (frames / "manifest.json").exists():
        assert thrifty(["prepare", f"images:minigrid-frames:{args.env}", "--out", str(frames),
                        "--count", str(args.frames), "--quiet"]) == 0  # fmt: skip
        seconds["frames"] = time.perf_counter() - began
    began = time.perf_counter()
    if not (slots / "ledger.json").exists():
        assert thrifty(["train", CONFIG, f"data.path={frames}", f"runs_dir={slots.parent}",
                        "name=slot-ae", "train.threads=1", f"train.max_steps={args.pretrain_steps}",
                        f"train.checkpoint_every={args.pretrain_steps}",
                        f"train.eval_every={args.pretrain_steps}"]) == 0  # fmt: skip
        seconds["slot_ae"] = time.perf_counter() - began
    if not (ae / "result.json").exists():
        seconds["cnn_ae"] = pretrain_cnn_ae(frames, ae, steps=args.pretrain_steps)["seconds"]
    timing.write_text(json.dumps(seconds) + "\n")
    rows = [json.loads(x) for x in (slots / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    ae_result = json.loads((ae / "result.json").read_text())
    return (
        slots,
        ae,
        {
            "slot_ae_first": losses[0],
            "slot_ae_final": losses[-1],
            "slot_ae_val": [r["val_loss"] for r in rows if "val_loss" in r][-1],
            "cnn_ae_first": ae_result["first_loss"],
            "cnn_ae_final": ae_result["final_loss"],
            "seconds": seconds,
        },
    )


@torch.no_grad()
def mask_sharpness(run: Path, frames: Path, count: int = 256) -> float:
    """Mean over test pixels of the largest slot mask: 1/K when every slot paints every pixel
    alike (no decomposition), 1 when each pixel belongs to one slot."""
    from thrifty.data.images import load_split
    from thrifty.models.slots import gaussian_noise
    from thrifty.objectives.slot_ae import encode_slots
    from thrifty.rl.slot_policy import load_slot_encoder

    loaded, nets = load_slot_encoder(run)
    images = load_split(frames, "test")["images"][:count].float() / 255.0
    K, D = nets.slots.num_slots, nets.slots.dim
    noise = gaussian_noise(
        torch.rand(len(images), K, D, generator=torch.Generator().manual_seed(0))
    )
    slots, _ = encode_slots(loaded.model, nets.slots, images, noise)
    _, alpha = nets.decoder(slots)
    return float(alpha.softmax(1).max(1).values.mean())


def main() -> None:
    from thrifty.rl.pixel_ppo import PixelPPOSettings, run_pixel_ppo

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench-runs/slots"))
    p.add_argument("--env", default="MiniGrid-Fetch-5x5-N2-v0")
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--pretrain-steps", type=int, default=600)
    p.add_argument("--steps", type=int, default=10_240, help="environment steps per PPO run")
    p.add_argument("--eval-every", type=int, default=2048)
    p.add_argument("--eval-episodes", type=int, default=48)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--section", type=Path, default=None, help="also write the section here")
    args = p.parse_args()
    torch.set_num_threads(1)
    slots, ae, info = pretrain(args)
    info["sharpness"] = mask_sharpness(slots, args.out / "frames")
    encoders = {"slots": str(slots), "cnn": None, "cnn-ae": str(ae)}
    curves: dict[str, list[list[dict]]] = {}
    seconds: dict[str, float] = {}
    for arm in ARMS:
        curves[arm], seconds[arm] = [], 0.0
        for seed in range(args.seeds):
            out = args.out / "ppo" / arm / f"seed{seed}"
            if not (out / "result.json").exists():
                settings = PixelPPOSettings(arm=arm, encoder=encoders[arm], env=args.env,
                                            steps=args.steps, seed=seed,
                                            eval_every=args.eval_every,
                                            eval_episodes=args.eval_episodes)  # fmt: skip
                run_pixel_ppo(out, settings)
            seconds[arm] += json.loads((out / "result.json").read_text())["seconds"]
            rows = (out / "curve.jsonl").read_text().splitlines()
            curves[arm].append([json.loads(r) for r in rows])
    (args.out / "curves.json").write_text(json.dumps(curves) + "\n")
    total = sum(info["seconds"].values()) + sum(seconds.values())  # measured, cached or not
    text = report(curves, seconds, info, args, total)
    if args.section is not None:
        args.section.parent.mkdir(parents=True, exist_ok=True)
        args.section.write_text(text + "\n")
    print(text)


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def report(curves, seconds, info, args, total: float) -> str:
    n = args.seeds
    lines = [
        f"Env {args.env}, 28x28 RGB egocentric frames; {args.steps:,} environment steps of PPO "
        f"per run, {n} seeds per arm, {args.eval_episodes} held-out levels per evaluation "
        f"(every {args.eval_every:,} steps). Pretraining: {args.frames:,} random-policy frames, "
        f"{args.pretrain_steps} steps each for slot_ae (K=4, T=3) and the CNN autoencoder "
        f"(seconds: {', '.join(f'{k} {v:.0f}' for k, v in info['seconds'].items())}).",
        "",
        f"Pretraining loss (pixel MSE): slot_ae {info['slot_ae_first']:.4f} -> "
        f"{info['slot_ae_final']:.4f} (valid {info['slot_ae_val']:.4f}); CNN AE "
        f"{info['cnn_ae_first']:.4f} -> {info['cnn_ae_final']:.4f}. Slot masks: the largest "
        f"slot mask averages {info['sharpness']:.2f} per test pixel (0.25: all 4 slots paint "
        "every pixel alike; 1: one slot per pixel).",
        "",
        "| arm | success at 0 | final success | return at 0 | final return | mean return over "
        "curve | PPO s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, runs in curves.items():
        first = mean(r[0]["success_rate"] for r in runs)
        final = mean(r[-1]["success_rate"] for r in runs)
        r0, r1 = mean(r[0]["mean_return"] for r in runs), mean(r[-1]["mean_return"] for r in runs)
        area = mean(mean(x["mean_return"] for x in r[1:]) for r in runs)
        spread = ", ".join(f"{r[-1]['mean_return']:.2f}" for r in runs)
        lines.append(
            f"| {arm} | {first:.2f} | {final:.2f} | {r0:.2f} | {r1:.2f} (seeds {spread}) "
            f"| {area:.2f} | {seconds[arm] / n:.0f} |"
        )
    lines += ["", f"({total / 60:.1f} min of pretraining and PPO in all)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
