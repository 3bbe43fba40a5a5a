"""Upcycle dense specialist runs into one mixture-of-experts run folder: BTX (Sukhbaatar et al.
2024, Branch-Train-MiX) and BAM (Zhang et al. 2024, Branch-Attend-Mix; ``papers/bam.md``).

A seed run is branched into N specialists (``thrifty train ... train.init_from=SEED`` on one
domain each); ``upcycle`` mixes them: MoE FFN experts from their FFNs (btx, bam, bam-kv), soft
mixture-of-attention experts from their attention (bam; bam-kv shares K and V), everything else
averaged, routers fresh (``thrifty.train.upcycle_weights``). The specialists must be dense runs
of one model section, one objective and one tokenizer; anything else is a one-line error naming
what differs, and nothing is written.

The result is a run folder like any other (``config.yaml``, ``tokenizer.json``, ``ledger.json``,
one checkpoint that ``thrifty.runs.load_model`` reads, ``upcycle.json`` naming the experts),
written to a temp folder and renamed. Its ``config.yaml`` is the recipe to continue it: the
mixture's model section, the first specialist's data, objective and train sections, and
``train.init_from`` naming the folder itself, so that

    thrifty train RUN/config.yaml name=NAME data.path=UNION_OF_DOMAINS

trains the mixture (the loop loads the weights and charges this run's ledger). The ledger charges
every specialist and the shared seed once (``thrifty.train.upcycle_ledger``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from safetensors.torch import load_file, save_file

from thrifty.atomic import new_folder
from thrifty.config import RunConfig, dump_config, to_dict
from thrifty.data.budget import Ledger
from thrifty.data.tokenizer import load_tokenizer, tokenizer_sha256
from thrifty.errors import UserError
from thrifty.runs import (
    CHECKPOINTS,
    LATEST,
    flops_per_token,
    model_kind,
    read_config,
    read_state,
    resolve_checkpoint,
    sha256_file,
)
from thrifty.train.upcycle_ledger import upcycled_ledger
from thrifty.train.upcycle_weights import build_mixture, check_method

WEIGHTS = "model.safetensors"
DENSE = {"mlp": "swiglu", "attention": "mha"}


@dataclass
class Run:
    """One input run: the name it was given by, its latest checkpoint, config and state."""

    name: str
    checkpoint: Path
    cfg: RunConfig
    state: dict

    @property
    def tokenizer(self) -> Path:
        return self.checkpoint.parent.parent / "tokenizer.json"

    @property
    def ledger(self) -> Ledger:
        return Ledger.from_dict(self.state.get("ledger", {}), f"{self.checkpoint}/state.json")


def read_run(path: str | Path) -> Run:
    ckpt = resolve_checkpoint(path)
    run = Run(str(path), ckpt, read_config(ckpt), read_state(ckpt, verify=True))
    if not run.tokenizer.is_file():
        raise UserError(f"cannot upcycle: {path} has no tokenizer.json")
    return run


def check_compatible(seed: Run, specialists: list[Run]) -> None:
    """One-line errors for specialists that cannot become experts of one mixture."""
    for run in (seed, *specialists):
        model = run.cfg.model
        for slot, dense in DENSE.items():
            if getattr(model, slot)["name"] != dense:
                raise UserError(
                    f"cannot upcycle: {run.name} is already a mixture "
                    f"(model.{slot}: {getattr(model, slot)['name']}); upcycle dense runs"
                )
        if run.state.get("densified"):
            raise UserError(f"cannot upcycle: {run.name} switched to dense (train.densify_at)")
    digest = tokenizer_sha256(load_tokenizer(seed.tokenizer))
    for run in specialists:
        other = tokenizer_sha256(load_tokenizer(run.tokenizer))
        if other != digest:
            raise UserError(
                f"cannot upcycle: {run.name} uses another tokenizer than the seed {seed.name} "
                f"(sha256 {other[:12]} vs {digest[:12]})"
            )
        _check_same_model(seed, run)
        names = seed.cfg.objective["name"], run.cfg.objective["name"]
        if names[0] != names[1]:
            raise UserError(
                f"cannot upcycle: objective: {names[0]} vs {names[1]} ({seed.name} vs "
                f"{run.name}); the experts must be trained for one objective"
            )


def _check_same_model(seed: Run, run: Run) -> None:
    ref, other = to_dict(seed.cfg.model), to_dict(run.cfg.model)
    for key in ref:
        # `size` only supplies defaults for the explicit widths, which are compared themselves
        if key != "size" and ref[key] != other[key]:
            raise UserError(
                f"cannot upcycle: model.{key}: {ref[key]} vs {other[key]} ({seed.name} vs "
                f"{run.name}); the specialists must share the seed's model section"
            )


def upcycle(
    seed_run: str | Path,
    specialist_runs: list[str | Path],
    out: str | Path,
    *,
    method: str,
    top_k: int = 2,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Mix the latest checkpoints of ``specialist_runs`` (expert i = specialist i), branched
    from ``seed_run``, into the run folder ``out``; ``seed`` draws the routers."""
    check_method(method)
    if not specialist_runs:
        raise UserError("cannot upcycle: give at least one specialist run after the seed run")
    n = len(specialist_runs)
    if not 1 <= top_k <= n:
        raise UserError(
            f"cannot upcycle: --top-k {top_k} must be between 1 and the number of experts, {n} "
            "(one per specialist)"
        )
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists (pass --overwrite to replace it)")
    base, specialists = read_run(seed_run), [read_run(r) for r in specialist_runs]
    for run in (base, *specialists):
        if run.checkpoint.parent.parent.resolve() == out.resolve():
            raise UserError(f"cannot upcycle: --out {out} is one of the input runs")
    check_compatible(base, specialists)
    states = [load_file(str(r.checkpoint / WEIGHTS)) for r in specialists]
    names = [r.name for r in specialists]
    model_cfg, model = build_mixture(specialists[0].cfg.model, states, method, top_k, seed, names)

    first = specialists[0].cfg
    train = replace(first.train, init_from=str(out))  # the folder is the recipe's start
    cfg = replace(first, name=out.name, runs_dir=str(out.parent), model=model_cfg, train=train)
    distinct = {r.checkpoint.resolve(): r for r in specialists}.values()  # repeats charge once
    note = f"{method}, {n} experts (top {top_k}) from {len(distinct)} specialist run(s)"
    charged = [(str(r.checkpoint), r.ledger) for r in distinct]
    ledger = upcycled_ledger(base.ledger, charged, note, str(base.tokenizer))
    info = {
        "method": method,
        "top_k": top_k,
        "router_seed": seed,
        "seed": _record(base),
        "experts": [_record(r) for r in specialists],  # expert i of every layer = specialist i
    }
    state = {
        "step": 0,
        "tokens_seen": 0,
        "model_kind": model_kind(specialists[0].state, first),
        "flops_per_token": flops_per_token({}, cfg),
        "ledger": ledger.to_dict(),
        "upcycle": info,
    }
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    _write_atomic(out, cfg, weights, state, ledger, base.tokenizer)
    return out


def _record(run: Run) -> dict:
    return {
        "run": str(run.checkpoint.parent.parent),
        "checkpoint": run.checkpoint.name,
        "step": run.state.get("step"),
        "words_seen": run.state.get("ledger", {}).get("words_seen"),
        "sha256": run.state.get("files", {}).get(WEIGHTS),
    }


def _write_atomic(out: Path, cfg, weights, state: dict, ledger: Ledger, tokenizer: Path) -> None:
    """Lay the run folder out in a temp folder, make it durable, then rename it to ``out``."""
    with new_folder(out) as tmp:
        config_yaml = dump_config(cfg)
        (tmp / "config.yaml").write_text(config_yaml)
        shutil.copyfile(tokenizer, tmp / "tokenizer.json")
        ledger.save(tmp / "ledger.json")
        (tmp / "upcycle.json").write_text(json.dumps(state["upcycle"], indent=2) + "\n")
        ckpt = tmp / CHECKPOINTS / "step_00000000"
        ckpt.mkdir(parents=True)
        save_file(weights, str(ckpt / WEIGHTS))
        (ckpt / "config.yaml").write_text(config_yaml)
        files = {name: sha256_file(ckpt / name) for name in (WEIGHTS, "config.yaml")}
        (ckpt / "state.json").write_text(json.dumps({**state, "files": files}, indent=1))
        (tmp / CHECKPOINTS / LATEST).write_text(ckpt.name)
