"""Evaluation during and at the end of training: validation loss and BLiMP on the final model."""

from __future__ import annotations

import json
import logging

import torch

from thrifty.atomic import write_text_atomic
from thrifty.config import RunConfig
from thrifty.data.budget import Ledger
from thrifty.data.source import DataSource
from thrifty.eval.pathways import pathway_metrics
from thrifty.model_kind import TEXT_KINDS, scoring_backend
from thrifty.models.transformer import Transformer
from thrifty.objectives import Batch, Objective
from thrifty.train.distributed import is_main
from thrifty.train.sharding import full_state
from thrifty.train.start import initial_model

log = logging.getLogger("thrifty.train")


@torch.no_grad()
def validate(
    objective: Objective, source: DataSource, cfg: RunConfig, device, autocast, world: int = 1
) -> dict:
    """Mean objective metrics over a fixed slice of the validation split, in batches of the
    global batch size (``world`` ranks), so every world size reports the same numbers.

    Validation batches have negative micro-batch indices, so their masks come from random
    streams of their own (``Objective.random``): identical at every evaluation, and apart
    from the training stream (that keeps resume exact).
    """
    B, T = cfg.train.batch_size * world, cfg.data.seq_len
    n = min(cfg.train.eval_batches * B, source.num_items(T))
    totals: dict[str, float] = {}
    batches = 0
    with objective.evaluation():
        for start in range(0, n, B):
            fields = source.batch(range(start, min(start + B, n)), T)
            fields = {k: v.to(device) for k, v in fields.items()}
            with autocast():
                out = objective(Batch.of(fields, progress=1.0, micro=-1 - batches))
            for key, value in out.metrics.items():
                totals[key] = totals.get(key, 0.0) + value
            batches += 1
    return {f"val_{k}": float(v) / max(batches, 1) for k, v in totals.items()}


def evaluate(
    objective: Objective,
    source: DataSource,
    cfg: RunConfig,
    device,
    autocast,
    world: int,
    model: Transformer,
    pathway_ids: torch.Tensor | None,
) -> dict:
    """The metrics of an evaluation during training: validation, the objective's own extra
    checks (e.g. an old domain's loss) and MoE routing on fixed training windows (grokking)."""
    val = validate(objective, source, cfg, device, autocast, world)
    val.update(objective.extra_validation(autocast))
    if pathway_ids is not None:
        with autocast():
            val.update(pathway_metrics(model, pathway_ids, objective.kind == "causal"))
    return val


def score_blimp(cfg: RunConfig, model: Transformer, kind: str, ledger: Ledger) -> dict:
    """Score the finished model on BLiMP with the backend that suits its ``kind`` unless
    eval.backend names another; write eval/blimp_<backend>.json beside the run. Nothing (a
    warning) for a discriminator left on ``auto``: it has no log-probs to score."""
    from thrifty.data.tokenizer import load_tokenizer
    from thrifty.eval.minimal_pairs import evaluate_minimal_pairs

    backend = scoring_backend(kind) if cfg.eval.backend == "auto" else cfg.eval.backend
    if backend is None:
        log.warning(
            "BLiMP skipped: %r models have no log-probs to score; set eval.backend to score anyway",
            cfg.objective["name"],
        )
        return {}
    tokenizer = load_tokenizer(cfg.run_dir / "tokenizer.json")
    model.eval()
    result = evaluate_minimal_pairs(
        model,
        tokenizer,
        cfg.eval.blimp_data,
        backend=backend,
        max_pairs_per_paradigm=cfg.eval.max_pairs_per_paradigm,
    )
    out = cfg.run_dir / "eval" / f"blimp_{backend}.json"
    out.parent.mkdir(exist_ok=True)
    write_text_atomic(out, json.dumps({**result, "ledger": ledger.to_dict()}, indent=1))
    log.info("BLiMP (%s): macro accuracy %.1f%% -> %s", backend, 100 * result["macro"], out)
    return {f"blimp_{backend}": result["macro"]}


def final_blimp(
    cfg: RunConfig, model: Transformer, kind: str, ledger: Ledger, sharded: bool, device
) -> dict:
    """BLiMP on the finished model, scored by rank 0 (``{}`` on other ranks and for images).

    A sharded model (``train.parallel=fsdp``) is gathered whole first; every rank joins that.
    """
    if not cfg.eval.blimp_data or kind not in TEXT_KINDS:  # images have no BLiMP
        return {}
    if sharded:  # rank 0 scores alone, so it gets a whole copy (every rank gathers)
        whole = full_state(model)
        model = initial_model(cfg).to(device)
        model.load_state_dict(whole)
    return score_blimp(cfg, model, kind, ledger) if is_main() else {}
