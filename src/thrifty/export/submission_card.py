"""README.md on a submission's main branch: the budget and the rule check, the recipe, the
scores, the revisions and how to load them, then the export's own card (loading, logits).
The same facts are in ``submission.json`` for programs."""

from __future__ import annotations


def _words(n) -> str:
    return "none" if n is None else f"{float(n):,.0f}"


def _rules(info: dict) -> list[str]:
    ledger, audit = info["ledger"], info["audit"]
    verdict = "pass" if audit["verdict"] == "pass" else "FAIL: " + "; ".join(audit["violations"])
    return [
        f"- rule check (`thrifty audit`): {verdict}; the full account is in `audit.json`, "
        "the ledger in `ledger.json`",
        f"- word budget: {_words(ledger['budget_words'])}",
        f"- charged words (every model's reading, the tokenizer's included): "
        f"{_words(ledger['charged_words'])}",
        f"- words seen in training: {_words(ledger['words_seen'])}",
        f"- epochs: {ledger['epochs']:.2f} over the training data; most passes over any word "
        f"{ledger['max_passes']:.2f} (max {ledger['max_epochs']:g})",
    ]


def _recipe(recipe: dict) -> list[str]:
    objective = dict(recipe["objective"])
    name = objective.pop("name")
    settings = ", ".join(f"{k}={v}" for k, v in objective.items()) or "defaults"
    m, t, d = recipe["model"], recipe["train"], recipe["data"]
    batch = f"{t['batch_size']} rows x {t['grad_accum']} accumulation"
    if "tokens_per_step" in t:
        batch += f" per process, {t['tokens_per_step']:,} tokens per step"
    limits = ", ".join(f"{k}={t[k]}" for k in ("max_steps", "max_words", "max_epochs") if k in t)
    lines = [
        f"- objective: `{name}` ({settings})",
        f"- model: size {m['size']}, {m['n_layers']} layers, width {m['d_model']}, "
        f"{m['n_heads']} heads, MLP width {m['d_ff']}, vocabulary {m['vocab_size']:,}; "
        f"{m['parameters']:,} parameters; block {m['block']}, attention {m['attention']}, "
        f"MLP {m['mlp']}, linear {m['linear']}",
        f"- optimizer: {t['optimizer']}, peak lr {t['lr']:g}, {t['schedule']} schedule "
        f"(warmup {t['warmup_steps']} steps, final lr x{t['min_lr_ratio']:g}), weight decay "
        f"{t['weight_decay']:g}, gradient clip {t['grad_clip']:g}",
        f"- batch: {batch}; windows of {d['seq_len']} tokens; sampler {d['sampler']['name']}",
        f"- length: {t['steps']:,} steps ({limits or 'no stopping rule recorded'}), seed "
        f"{t['seed']}",
    ]
    if t.get("ema_decay"):
        lines.append(f"- weights: moving average with decay {t['ema_decay']:g} kept")
    return lines


def _scores(info: dict) -> list[str]:
    if not info["results"]:
        return [
            "No evaluation results of the final checkpoint were found in the run's `eval/` "
            "folder (`thrifty eval`, `thrifty finetune` write them there)."
        ]
    lines = ["| task | backend | metric | score | file |", "|---|---|---|---|---|"]
    for r in info["results"]:
        backend = r.get("backend", "")
        if r.get("variant") not in (None, "original"):
            backend += f" ({r['variant']})"
        score = "" if r.get("score") is None else f"{r['score']:.4f}"
        lines.append(
            f"| {r.get('task', '')} | {backend} | {r.get('metric', '')} | {score} | `{r['file']}` |"
        )
    return [*lines, "", "The files are thrifty's result JSONs, each with the ledger attached."]


def _revisions(info: dict) -> list[str]:
    lines = ["| branch | word mark | words seen | step |", "|---|---|---|---|"]
    for r in [*info["revisions"], info["final"]]:
        mark = "final model" if r["name"] == "main" else f"{r['word_mark']:,}"
        lines.append(f"| `{r['name']}` | {mark} | {r['words_seen']:,.0f} | {r['step']:,} |")
    if not info["revisions"]:
        lines += ["", "The run kept no word-mark checkpoints (`train.babylm_marks=false`)."]
    if info["missing_marks"]:
        gaps = ", ".join(f"{m:,}" for m in info["missing_marks"])
        lines += ["", f"No checkpoint was kept at these word marks: {gaps}."]
    return lines


def _loading(info: dict) -> list[str]:
    classes = info["auto_classes"]
    auto = next(
        c for c in ("AutoModelForMaskedLM", "AutoModelForCausalLM", "AutoModel") if c in classes
    )
    trust = ", trust_remote_code=True" if info["remote_code"] else ""
    branch = info["revisions"][0]["name"] if info["revisions"] else "chck_1M"
    return [
        "From the Hugging Face Hub, a revision is a branch:",
        "",
        "```python",
        f"from transformers import {auto}",
        f'model = {auto}.from_pretrained("USER/MODEL", revision="{branch}"{trust})',
        "```",
        "",
        "transformers ignores `revision` for a local folder and loads what is checked out",
        "(main), so check the branch out first and load that folder:",
        "",
        "```bash",
        f"git clone --branch {branch} SUBMISSION_DIR {branch}",
        "```",
        "",
        "To push: the Hub keeps files over 10 MB in git LFS, and these commits hold",
        "`model.safetensors` as plain git objects, so convert the history before pushing",
        "(`git lfs track` alone would only cover later commits):",
        "",
        "```bash",
        "git lfs install",
        'git lfs migrate import --everything --include="*.safetensors"',
        "git remote add hub https://huggingface.co/USER/MODEL && git push hub --all",
        "```",
    ]


def _demoted(card: str) -> list[str]:
    """The export's card one heading level down, to sit under this one."""
    return [f"#{line}" if line.startswith("#") else line for line in card.splitlines()]


def submission_card(info: dict, export_card: str) -> str:
    """Markdown for a submission described by its ``submission.json`` contents."""
    budget = info["ledger"]["budget_words"]
    title = "no word budget" if budget is None else f"{float(budget) / 1e6:g}M-word budget"
    lines = [
        f"# BabyLM submission: {info['name']}, {info['recipe']['objective']['name']} model "
        f"({title})",
        "",
        "Written by `thrifty submit`: the final model on `main`, and each word-mark checkpoint "
        "on its own branch (BabyLM 2025 naming, `chck_{N}M`).",
        "",
        "## Data budget and rules",
        "",
        *_rules(info),
        "",
        "## Recipe",
        "",
        *_recipe(info["recipe"]),
        "",
        "The resolved training config is in `thrifty.json`.",
        "",
        "## Scores of the final model",
        "",
        *_scores(info),
        "",
        "## Revisions",
        "",
        *_revisions(info),
        "",
        "## Loading a revision",
        "",
        *_loading(info),
        "",
        *_demoted(export_card),
    ]
    return "\n".join(lines) + "\n"
