"""Model soups: the uniform average of compatible checkpoints' weights (Wortsman et al. 2022).

MCL's "course soups" average discriminators trained with different course mixtures from one
initialisation (Chen et al. 2023); the same averaging works for any objective. Ingredients must
share the model shape (every tensor name and shape, and the model config) and the tokenizer;
anything else is a clear error naming what differs. Only ``model.safetensors`` is averaged (in
float64, so a soup of identical checkpoints is exactly that checkpoint): the result is a run
folder that ``load_model``, eval, fine-tuning and export read like any other, but not one to
resume (no optimizer state, no generator).

The ledger. Every word any ingredient saw was spent making the soup, so ``words_seen`` is the
sum over ingredients. Ingredients prepared from the same data (same sources, selection and
budget) keep that budget and its prepared words: a soup of runs on one 10M-word BabyLM sample
is still a 10M-word model, and the epoch rule applies to the summed exposure (three 3-epoch
ingredients make 9 epochs). Ingredients prepared from different data add their prepared words
while the budget stays the largest one, so ``thrifty audit`` flags a soup that pools more
distinct words than its track allows. Ingredients fine-tuned from one start model (or sharing
any other auxiliary charge) pay for it once, and its passes reach the soup once, as they are in
every ingredient's weights once. ``soup.json`` lists the ingredients.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from thrifty.atomic import new_folder
from thrifty.config import dump_config, to_dict
from thrifty.data.budget import Ledger
from thrifty.errors import UserError
from thrifty.runs import (
    CHECKPOINTS,
    LATEST,
    read_config,
    read_state,
    resolve_checkpoint,
    sha256_file,
)
from thrifty.train.start import START_MODEL

WEIGHTS = "model.safetensors"


def _check(ref: dict[str, torch.Tensor], state: dict[str, torch.Tensor], ref_name, name) -> None:
    for key in sorted(ref.keys() | state.keys()):
        if key not in state or key not in ref:
            has, lacks = (ref_name, name) if key in ref else (name, ref_name)
            raise UserError(f"cannot soup: tensor {key!r} is in {has} but not in {lacks}")
        if state[key].shape != ref[key].shape:
            raise UserError(
                f"cannot soup: tensor {key!r} has shape {tuple(ref[key].shape)} in "
                f"{ref_name} but {tuple(state[key].shape)} in {name}"
            )


def average(states: Iterable[tuple[str, dict[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
    """Uniform average of named state dicts with identical tensor names and shapes.

    Sums in float64 one ingredient at a time (memory: two copies of one model, whatever the
    number of ingredients), so averaging n identical checkpoints gives that checkpoint exactly.
    """
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    first, n = "", 0
    for name, state in states:
        if not n:
            first, dtypes = name, {k: v.dtype for k, v in state.items()}
            total = {k: v.double() for k, v in state.items()}
        else:
            _check(total, state, first, name)
            for key, value in state.items():
                total[key] += value.double()
        n += 1
    if not n:
        raise UserError("give at least one run to soup")
    return {k: (v / n).to(dtypes[k]).contiguous() for k, v in total.items()}


def soup_ledger(ledgers: list[dict]) -> Ledger:
    """The soup's ledger: summed words seen; the data budget of distinct prepared datasets."""
    groups: dict[str, Ledger] = {}
    for data in ledgers:
        ledger = Ledger.from_dict(data)
        groups.setdefault(ledger.data_key(), ledger)
    distinct = list(groups.values())
    out = Ledger.from_dict(ledgers[0])
    budgets = [g.budget_words for g in distinct if g.budget_words is not None]
    out.budget_words = max(budgets) if budgets else None
    out.sources = [s for g in distinct for s in g.sources]
    out.prepared_words = {
        split: sum(int(g.prepared_words.get(split, 0)) for g in distinct)
        for split in ("train", "valid")
    }
    # an auxiliary entry equal in several ingredients (a shared start model, a data selector
    # of the shared data) is the same words: charged once
    out.aux_models = _distinct(m for data in ledgers for m in data.get("aux_models", []))
    out.words_seen = float(sum(data.get("words_seen", 0.0) for data in ledgers))
    out.max_epochs = min(g.max_epochs for g in distinct)
    out.texts = sorted({t for g in distinct for t in g.texts})
    out.valid_texts = sorted({t for g in distinct for t in g.valid_texts})
    # every ingredient's own other passes (replay sets, teachers) add up; a shared start
    # model's passes are in every ingredient's weights once, and reach the soup once
    exposure = [e for data in ledgers for e in data.get("exposure", [])]
    inherited = [e for e in exposure if e["name"].startswith(START_MODEL)]
    own = [copy.deepcopy(e) for e in exposure if not e["name"].startswith(START_MODEL)]
    out.exposure = _distinct(inherited) + own
    return out


def _distinct(entries: Iterable[dict]) -> list[dict]:
    found: dict[str, dict] = {}
    for entry in entries:
        found.setdefault(json.dumps(entry, sort_keys=True), copy.deepcopy(entry))
    return list(found.values())


def _check_configs(cfgs, names: list[str]) -> None:
    first = to_dict(cfgs[0].model)
    for cfg, name in zip(cfgs[1:], names[1:]):
        for key, value in to_dict(cfg.model).items():
            if value != first[key]:
                raise UserError(
                    f"cannot soup: model.{key} is {first[key]!r} in {names[0]} but "
                    f"{value!r} in {name}"
                )


def make_soup(runs: list[str | Path], out: str | Path, *, overwrite: bool = False) -> Path:
    """Average the latest checkpoints of ``runs`` (or checkpoint folders) into run ``out``."""
    if not runs:
        raise UserError("give at least one run to soup")
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists (pass --overwrite to replace it)")
    ckpts = [resolve_checkpoint(r) for r in runs]
    names = [str(r) for r in runs]
    cfgs = [read_config(c) for c in ckpts]
    states = [read_state(c, verify=True) for c in ckpts]
    tokenizers = [c.parent.parent / "tokenizer.json" for c in ckpts]
    for tok, name in zip(tokenizers, names):
        if not tok.is_file():
            raise UserError(f"cannot soup: {name} has no tokenizer.json")
    digests = [sha256_file(t) for t in tokenizers]
    for digest, name in zip(digests[1:], names[1:]):
        if digest != digests[0]:
            raise UserError(f"cannot soup: {name} uses another tokenizer than {names[0]}")
    weights = average((name, load_file(str(c / WEIGHTS))) for name, c in zip(names, ckpts))
    _check_configs(cfgs, names)

    cfg = replace(cfgs[0], name=out.name, runs_dir=str(out.parent))
    ledger = soup_ledger([s.get("ledger", {}) for s in states])
    step = max(int(s.get("step", 0)) for s in states)
    ingredients = [
        {
            "run": str(c.parent.parent),
            "checkpoint": c.name,
            "step": s.get("step"),
            "objective": cfg_i.objective,
            "words_seen": s.get("ledger", {}).get("words_seen"),
            "sha256": s.get("files", {}).get(WEIGHTS),
        }
        for c, s, cfg_i in zip(ckpts, states, cfgs)
    ]
    with new_folder(out) as tmp:
        _write(tmp, cfg, weights, ledger, ingredients, step, tokenizers[0])
    return out


def _write(folder, cfg, weights, ledger: Ledger, ingredients, step: int, tokenizer) -> None:
    config_yaml = dump_config(cfg)
    (folder / "config.yaml").write_text(config_yaml)
    shutil.copyfile(tokenizer, folder / "tokenizer.json")
    ledger.save(folder / "ledger.json")
    soup = {"method": "uniform", "ingredients": ingredients}
    (folder / "soup.json").write_text(json.dumps(soup, indent=2) + "\n")
    ckpt = folder / CHECKPOINTS / f"step_{step:08d}"
    ckpt.mkdir(parents=True)
    save_file(weights, str(ckpt / WEIGHTS))
    (ckpt / "config.yaml").write_text(config_yaml)
    files = {name: sha256_file(ckpt / name) for name in (WEIGHTS, "config.yaml")}
    state = {"step": step, "files": files, "ledger": ledger.to_dict(), "soup": soup}
    (ckpt / "state.json").write_text(json.dumps(state, indent=1))
    (folder / CHECKPOINTS / LATEST).write_text(ckpt.name)
