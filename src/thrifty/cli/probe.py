"""``thrifty probe RUN``: an image encoder's frozen features under a linear probe, k-NN and a
few-label curve, against a randomly initialised encoder (``thrifty.eval.image_probe``); with
``--multilabel``, the mAP of a multi-label probe instead (``thrifty.eval.multilabel_probe``);
with ``--finetune``, both encoders fine-tuned end to end on N labels under the label-efficiency
protocol (``thrifty.eval.image_finetune``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from thrifty.cli.finetune import parse_seeds


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "probe",
        help="linear probe, k-NN and few-label accuracy of an image encoder's features",
        description="Freeze the run's encoder and its randomly initialised twin (same "
        "architecture and seed), read mean-pooled features of the prepared image set's splits, "
        "choose the probe's setting on valid, and report accuracy on test.",
    )
    p.add_argument("run", help="run folder or checkpoint folder of an image encoder")
    p.add_argument("--data", help="prepared image set (default: the run's data.path)")
    p.add_argument(
        "--sizes",
        default=None,
        help="training labels per point of the curve (default 10,20,50,100,200,500; "
        "--finetune: 10,20,50,100,200)",
    )
    p.add_argument("--seeds", default="3", help="a count or a list of label-sample seeds")
    p.add_argument("--out", help="output JSON (default: <run>/eval/probe.json)")
    p.add_argument(
        "--multilabel",
        action="store_true",
        help="instead: mAP of a one-vs-rest probe on a multi-label set's targets (images:mosaic)"
        "; default output <run>/eval/probe_multilabel.json",
    )
    tune = p.add_argument_group("--finetune: end to end on N labels, pretrained vs random init")
    tune.add_argument(
        "--finetune",
        action="store_true",
        help="instead: fine-tune each encoder with a linear head on the same nested, stratified "
        "N labels (early stopping and lr chosen on a share of them), accuracy on test; default "
        "output <run>/eval/finetune_images.json",
    )
    tune.add_argument(
        "--lrs", default="3e-4,1e-3,3e-3", help="lr grid each arm chooses from (3e-4,1e-3,3e-3)"
    )
    tune.add_argument("--max-epochs", type=int, default=20, help="most epochs (default 20)")
    tune.add_argument("--patience", type=int, default=5, help="early-stopping patience (5)")
    tune.add_argument(
        "--valid-fraction",
        type=float,
        default=0.2,
        help="share of the N labels held out for early stopping and the lr (default 0.2)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from thrifty.atomic import write_text_atomic
    from thrifty.cli.numbers import as_count
    from thrifty.eval.image_probe import probe_encoders
    from thrifty.runs import load_model
    from thrifty.train.start import initial_model

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.run)
    data = Path(args.data or loaded.cfg.data.path)
    default = "10,20,50,100,200" if args.finetune else "10,20,50,100,200,500"
    sizes = [as_count(s) for s in (args.sizes or default).split(",")]
    seeds = parse_seeds(args.seeds)
    seeds = list(range(seeds[0])) if len(seeds) == 1 else seeds  # a count: 0..n-1
    encoders = {"pretrained": loaded.model, "random_init": initial_model(loaded.cfg)}
    if args.multilabel:
        return run_multilabel(args, loaded, data, encoders)
    if args.finetune:
        return run_finetune(args, loaded, data, encoders["random_init"], sizes, seeds)
    result = probe_encoders(encoders, data, sizes, seeds)
    result |= {"run": str(loaded.checkpoint), "data": str(data)}
    out = Path(args.out) if args.out else loaded.run_dir / "eval" / "probe.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    for arm, probes in result["arms"].items():
        lin, knn = probes["linear"], probes["knn"]
        print(
            f"{arm:12s} linear {lin['test']:.3f} (C={lin['C']:g})  k-NN {knn['test']:.3f} "
            f"(k={knn['k']})"
        )
    if "few_labels" in result:
        print("labels   " + "  ".join(f"{n:>6}" for n in sizes))
        for arm, by_n in result["few_labels"].items():
            cells = "  ".join(f"{by_n[str(n)]['mean']:6.3f}" for n in sizes)
            print(f"{arm[:8]:8s} {cells}")
        factor = result["labels_saved"]["factor"]
        print(f"labels saved by pretraining: {'n/a' if factor is None else f'{factor:.2f}x'}")
    print(f"wrote {out}")
    return 0


def run_multilabel(args: argparse.Namespace, loaded, data: Path, encoders: dict) -> int:
    """``--multilabel``: macro mAP on test (``thrifty.eval.multilabel_probe``)."""
    from thrifty.atomic import write_text_atomic
    from thrifty.eval.multilabel_probe import probe_multilabel

    result = probe_multilabel(encoders, data) | {"run": str(loaded.checkpoint), "data": str(data)}
    out = Path(args.out) if args.out else loaded.run_dir / "eval" / "probe_multilabel.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    for arm, probe in result["arms"].items():
        print(f"{arm:12s} mAP {probe['test']:.3f} (C={probe['C']:g})")
    print(f"{'chance':12s} mAP {result['chance']:.3f}")
    print(f"wrote {out}")
    return 0


def run_finetune(args: argparse.Namespace, loaded, data: Path, random_init, sizes, seeds) -> int:
    """``--finetune``: test accuracy vs N, end to end (``thrifty.eval.image_finetune``)."""
    from thrifty.cli.label_efficiency import parse_lrs
    from thrifty.eval.image_finetune import (
        RESULT_FILE,
        default_settings,
        finetune_images,
        write_result,
    )

    result = finetune_images(
        loaded,
        random_init,
        data,
        sizes=sizes,
        seeds=seeds,
        lrs=parse_lrs(args.lrs),
        settings=default_settings(args.max_epochs, args.patience),
        valid_fraction=args.valid_fraction,
    )
    out = Path(args.out) if args.out else loaded.run_dir / "eval" / RESULT_FILE
    plot = write_result(result, out)
    print(f"{'N':>5}  {'pretrained':>15}  {'random init':>15}   (test accuracy, mean ± std)")
    for n in result["sizes"]:
        a, b = (result["summary"][arm][str(n)] for arm in ("pretrained", "random_init"))
        print(f"{n:>5}  {a['mean']:.3f} ± {a['std']:.3f}    {b['mean']:.3f} ± {b['std']:.3f}")
    factor = result["labels_saved"]["factor"]
    print(f"labels saved by pretraining: {'n/a' if factor is None else f'{factor:.2f}x'}")
    print(f"wrote {out}" + (f" and {plot}" if plot else ""))
    return 0
