"""``thrifty zero-shot RUN``: zero-shot accuracy and image–text retrieval of a ``clip`` run on
the test split of its pairs set, against the randomly initialised towers of the same run
(``thrifty.eval.zero_shot``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "zero-shot",
        help="zero-shot classification and retrieval recall of a clip run's two towers",
        description="Embed the test pairs with the run's image and text towers, classify each "
        "image by its nearest class prompt ensemble, and rank captions and images both ways; "
        "the same for the untrained towers (same architecture and seed).",
    )
    p.add_argument("run", help="run folder or checkpoint folder of a clip run")
    p.add_argument("--data", help="prepared pairs set (default: the run's data.path)")
    p.add_argument("--split", default="test", choices=("valid", "test"), help="split to score")
    p.add_argument("--out", help="output JSON (default: <run>/eval/zero_shot.json)")
    p.set_defaults(func=run)
    return p


def clip_towers(loaded, trained: bool):
    """(image model, ClipHeads) of a loaded clip run: its checkpoint's, or untrained ones built
    as the run built them (``initial_model`` then the objective, from the same seed)."""
    from thrifty.errors import UserError
    from thrifty.objectives import OBJECTIVES
    from thrifty.train.checkpoint import load_objective_weights
    from thrifty.train.start import initial_model

    cfg = loaded.cfg
    if cfg.objective.get("name") != "clip":
        raise UserError(
            f"{loaded.checkpoint}: zero-shot reads a clip run's towers; its objective.name is "
            f"{cfg.objective.get('name')!r}"
        )
    model = loaded.model if trained else initial_model(cfg)
    heads = OBJECTIVES.build(cfg.objective, model, seed=cfg.train.seed).owned
    if trained:
        heads.load_state_dict(load_objective_weights(loaded.checkpoint))
    return model, heads


def run(args: argparse.Namespace) -> int:
    from thrifty.atomic import write_text_atomic
    from thrifty.eval.zero_shot import arms_table, zero_shot
    from thrifty.runs import load_model

    loaded = load_model(args.run)
    data = Path(args.data or loaded.cfg.data.path)
    result: dict = {"run": str(loaded.checkpoint), "data": str(data), "arms": {}}
    for arm, trained in (("pretrained", True), ("random_init", False)):
        model, heads = clip_towers(loaded, trained)
        result["arms"][arm] = zero_shot(model, heads, data, args.split)
    out = Path(args.out) if args.out else loaded.run_dir / "eval" / "zero_shot.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print("\n".join(arms_table(result)))
    print(f"wrote {out}")
    return 0
