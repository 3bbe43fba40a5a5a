"""Shared fixtures: ``shared_data`` (the real data sets for integration tests) and a tiny run
folder on disk (nano model, small BPE tokenizer, one checkpoint) for eval and export tests."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import save_file

from thrifty.config import ModelConfig, RunConfig, TrainConfig, to_dict
from thrifty.data.tokenizer import train_tokenizer
from thrifty.models.transformer import Transformer

# The test models are tiny; one thread avoids oversubscription when other work shares the cores.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """$THRIFTY_TEST_DATA, or ../shared/data; relative paths count from the repo root.

    A missing folder fails the test instead of skipping it, so CI cannot pass by not looking.
    """
    configured = os.environ.get("THRIFTY_TEST_DATA")
    path = Path(configured) if configured else Path("../shared/data")
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_dir():
        origin = f"THRIFTY_TEST_DATA={configured}" if configured else "the default ../shared/data"
        pytest.fail(f"shared test data not found at {path} ({origin})")
    return path.resolve()


COMMON = "the a cat dog sat ran on in mat park is was big small red and then it".split()
# Never in the tokenizer's training text, so byte-level BPE splits them into several tokens.
RARE = "tourists unbelievably pharmacists xylophones quizzically flabbergasted".split()
LEDGER = {"budget_words": 1000, "words_seen": 500, "sources": [{"path": "toy.txt"}]}


@dataclass
class TinyRun:
    run_dir: Path
    model: Transformer
    tokenizer: object
    cfg: RunConfig


def toy_texts(n: int = 300, seed: int = 0) -> list[str]:
    """Sentences of 3-9 common words."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(COMMON, k=rng.randint(3, 9))) for _ in range(n)]


def write_run(root: Path, model: Transformer, tokenizer, cfg: RunConfig, step: int = 1) -> Path:
    """Lay out a run folder the way training does (runs.py docstring)."""
    root.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(root / "tokenizer.json"))
    (root / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    (root / "ledger.json").write_text(json.dumps(LEDGER))
    ckpt = root / "checkpoints" / f"step_{step:08d}"
    ckpt.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(ckpt / "model.safetensors"))
    (ckpt / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    (ckpt / "state.json").write_text(json.dumps({"step": step, "files": {}, "ledger": LEDGER}))
    (root / "checkpoints" / "latest").write_text(ckpt.name)
    return root


def build_run(root: Path, objective: str = "causal_lm", seed: int = 0, **model) -> TinyRun:
    """A run folder holding a random nano model; ``model``: more ModelConfig settings."""
    tokenizer = train_tokenizer(toy_texts(), vocab_size=400)
    model_cfg = ModelConfig(
        size="nano", vocab_size=tokenizer.get_vocab_size(), max_seq_len=64, **model
    )
    cfg = RunConfig(
        name="tiny",
        model=model_cfg,
        objective={"name": objective},
        train=TrainConfig(max_steps=1),
    )
    torch.manual_seed(seed)
    model = Transformer(model_cfg)
    # Larger weights than the default init make the random model's predictions far from
    # uniform, so score comparisons in tests are not swamped by rounding.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
    model.eval()
    return TinyRun(write_run(root, model, tokenizer, cfg), model, tokenizer, cfg)


@pytest.fixture(scope="session")
def toy() -> SimpleNamespace:
    """This module's helpers, for test files (importing conftest modules is fragile)."""
    return SimpleNamespace(
        texts=toy_texts, common=COMMON, rare=RARE, ledger=LEDGER, build_run=build_run
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    return build_run(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture
def blimp_dir(shared_data) -> Path:
    """The original BLiMP (67 paradigms × 1000 pairs) in the shared data folder."""
    return shared_data / "blimp"
