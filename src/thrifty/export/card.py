"""README.md of an export folder: how to load the model, what its logits mean, what budget
produced it. The same facts are in ``thrifty.json`` for programs."""

from __future__ import annotations


def _budget(ledger: dict) -> list[str]:
    budget = ledger.get("budget_words")
    seen = ledger.get("words_seen")
    lines = [f"- word budget: {'none' if budget is None else f'{int(budget):,}'}"]
    if seen is not None:
        lines.append(f"- words seen in training: {float(seen):,.0f}")
    for aux in ledger.get("aux_models") or []:
        lines.append(f"- auxiliary model {aux.get('name')}: {int(aux.get('words', 0)):,} words")
    return lines


def _backend(backend: str | None) -> str:
    if backend is None:
        return "no zero-shot scoring backend (a discriminator has no language-model head)"
    return f"BabyLM scoring backend `{backend}`"


def _loading(meta: dict) -> list[str]:
    if not meta["remote_code"]:
        return [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "model = AutoModelForCausalLM.from_pretrained(folder)  # LlamaForCausalLM",
            "tok = AutoTokenizer.from_pretrained(folder)",
            "```",
        ]
    classes = meta["auto_classes"]
    auto = next(
        c for c in ("AutoModelForMaskedLM", "AutoModelForCausalLM", "AutoModel") if c in classes
    )
    lines = [
        "This folder holds thrifty's modeling code (`configuration_thrifty.py`,",
        "`layers_thrifty.py`, `modeling_thrifty.py`: torch and transformers only); read it",
        "before you trust it.",
        "",
        "```python",
        f"from transformers import {auto}, AutoTokenizer",
        f"model = {auto}.from_pretrained(folder, trust_remote_code=True)",
    ]
    if auto != "AutoModelForCausalLM" and "AutoModelForCausalLM" in classes:
        lines.append(
            "causal = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)"
        )
    # AutoTokenizer reads config.json too, and asks before it runs the code named there.
    return lines + ["tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)", "```"]


def model_card(meta: dict) -> str:
    """Markdown for an export described by its ``thrifty.json`` contents."""
    objective = meta["objective"]["name"]
    lines = [
        f"# thrifty export: {objective} model (step {meta['step']})",
        "",
        f"Architecture `{meta['architecture']}`, {_backend(meta['scoring_backend'])}.",
        "",
        "## Loading",
        "",
        *_loading(meta),
        "",
        "## What the logits mean",
        "",
        meta["logits"],
        "",
        "The tokenizer prepends `<s>` (id 1) as thrifty did in training; pad on the right.",
        "",
        "## Data budget (the run's ledger)",
        "",
        *_budget(meta["ledger"]),
        "",
        "The full ledger and training config are in `thrifty.json`.",
        "",
    ]
    return "\n".join(lines)
