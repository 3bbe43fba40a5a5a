"""The report's first section: each run's budget (the ledger), model size, training FLOPs,
objective and the config fields that decide what a number means."""

from __future__ import annotations

from thrifty.analysis.report_data import RunData
from thrifty.analysis.report_render import DASH, Section, Table
from thrifty.errors import UserError

LIMITS = ("max_steps", "max_tokens", "max_words", "max_epochs")


def _count(value) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else DASH


def _si(value, unit: str = "") -> str:
    if not isinstance(value, int | float):
        return DASH
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".strip()


def _ledger_rows(ledger: dict) -> dict[str, str]:
    """Budget facts; the rules are checked by thrifty's own Ledger when the file parses."""
    if not ledger:
        return {}
    from thrifty.data.budget import Ledger

    try:
        parsed = Ledger.from_dict(ledger)
    except (UserError, TypeError) as e:
        parsed, broken = None, str(e)
    budget = ledger.get("budget_words")
    unit = ledger.get("unit", "words")  # images, transitions, ... for other modalities
    item = "word" if unit == "words" else "item"
    rows = {
        f"budget ({unit})": "none" if budget is None else _count(budget),
        f"{unit} seen": _count(ledger.get("words_seen")),
    }
    if parsed is not None:
        rows[f"charged ({unit})"] = _count(parsed.charged_words())
        epochs = f"{parsed.epochs:.2f}" if parsed.train_words else DASH
        rows["epochs (max)"] = f"{epochs} ({parsed.max_epochs:g})"
        rows[f"most passes over a{'n' if item == 'item' else ''} {item}"] = (
            f"{parsed.max_passes()[0]:.2f}"
        )
        aux = [f"{m['name']}: {int(m['words']):,} words" for m in parsed.aux_models]
        rows["auxiliary models"] = "; ".join(aux) if aux else "none"
        rows["violations"] = "; ".join(parsed.violations()) or "none"
    else:
        rows["violations"] = f"not checked: {broken}"
    return rows


def _config_rows(cfg: dict) -> dict[str, str]:
    if not cfg:
        return {}
    model, train, data = cfg.get("model", {}), cfg.get("train", {}), cfg.get("data", {})
    objective = dict(cfg.get("objective") or {})
    name = objective.pop("name", DASH)
    settings = ", ".join(f"{k}={v}" for k, v in objective.items())
    linear = (model.get("linear") or {}).get("name", "dense")
    limits = ", ".join(f"{k}={train[k]:,}" for k in LIMITS if train.get(k) is not None)
    tokens = f"{train.get('batch_size')}×{train.get('grad_accum', 1)}×{data.get('seq_len')}"
    return {
        "objective": f"{name} ({settings})" if settings else str(name),
        "model": (
            f"{model.get('size')}: d_model {model.get('d_model')}, {model.get('n_layers')} "
            f"layers, {model.get('n_heads')} heads, d_ff {model.get('d_ff')}, vocab "
            f"{model.get('vocab_size')}" + ("" if linear == "dense" else f", linear {linear}")
        ),
        "optimization": (
            f"{train.get('optimizer')} lr {train.get('lr')}, {train.get('schedule')}, "
            f"{tokens} tokens/step, seed {train.get('seed')}"
        ),
        "stop at": limits or DASH,
        "data": str(data.get("path", DASH)),
    }


def _model_rows(facts: dict) -> dict[str, str]:
    if not facts:
        return {}
    ckpt = facts.get("checkpoint")
    step, params = facts.get("step"), facts.get("params")
    return {
        "checkpoint": f"{ckpt} (step {step})" if ckpt else f"none yet (step {step or DASH})",
        "parameters": f"{params:,} ({_si(params)})" if isinstance(params, int) else DASH,
        "tokens seen": _count(facts.get("tokens_seen")),
        "training FLOPs per token": _si(facts.get("flops_per_token"), "FLOP"),
        "training FLOPs (total)": _si(facts.get("train_flops"), "FLOP"),
    }


def ledger_section(runs: list[RunData]) -> Section | None:
    per_run = [_ledger_rows(r.ledger) | _model_rows(r.model) | _config_rows(r.config) for r in runs]
    facts = list(dict.fromkeys(k for rows in per_run for k in rows))
    if not facts:
        return None
    table = Table(["", *[r.name for r in runs]], [])
    for fact in facts:
        table.rows.append([fact, *[rows.get(fact, DASH) for rows in per_run]])
    note = (
        "Training FLOPs ≈ FLOPs per token (6 × matmul weights + attention, forward and backward; "
        "the LM head counted on the positions the objective supervises) × tokens seen."
    )
    return Section("Runs, budgets and compute", [table, note])
