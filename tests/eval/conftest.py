"""``task_run``: a nano GPT-BERT run whose tokenizer knows the zero-shot task texts.

The shared ``tiny_run`` has a 400-token vocabulary and 64 positions, too few for entity-tracking
prompts (up to ~150 words). This one trains its BPE on the task files themselves, so every item
fits in 512 positions and scoring stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import save_file

from thrifty.config import ModelConfig, RunConfig, TrainConfig, to_dict
from thrifty.data.tokenizer import train_tokenizer
from thrifty.eval.records import data_files, read_records
from thrifty.models.transformer import Transformer

STEP = 7
LEDGER = {"budget_words": 1000, "words_seen": 500, "sources": [{"path": "toy.txt"}]}


def task_texts(shared: Path, per_file: int = 200) -> list[str]:
    """Some text of every zero-shot task, for training the test tokenizer."""
    texts = []
    eval_root = shared / "babylm_eval" / "full_eval"
    for folder, fields in [
        (shared / "blimp", ("sentence_good", "sentence_bad")),
        (eval_root / "supplement_filtered", ("sentence_good", "sentence_bad")),
        (eval_root / "entity_tracking", ("input_prefix",)),
        (eval_root / "wug_adj_nominalization", ("sentences",)),
    ]:
        for path in data_files(folder)[:8]:
            for n, rec in read_records(path, {}):
                if n > per_file:
                    break
                texts += [rec[f] for f in fields]
                texts += [" ".join(rec.get("options", []))]
    return texts


@pytest.fixture(scope="session")
def task_run(tmp_path_factory, shared_data) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("runs") / "tasks"
    tokenizer = train_tokenizer(task_texts(shared_data), vocab_size=1500)
    model_cfg = ModelConfig(size="nano", vocab_size=tokenizer.get_vocab_size(), max_seq_len=512)
    cfg = RunConfig(
        name="tasks",
        model=model_cfg,
        objective={"name": "gpt_bert"},
        train=TrainConfig(max_steps=1),
    )
    torch.manual_seed(0)
    model = Transformer(model_cfg)
    with torch.no_grad():  # far-from-uniform predictions, so scores rarely tie by rounding
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
    model.eval()
    root.mkdir(parents=True)
    tokenizer.save(str(root / "tokenizer.json"))
    (root / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    (root / "ledger.json").write_text(json.dumps(LEDGER))
    ckpt = root / "checkpoints" / f"step_{STEP:08d}"
    ckpt.mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt / "model.safetensors")
    )
    (ckpt / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    (ckpt / "state.json").write_text(json.dumps({"step": STEP, "files": {}, "ledger": LEDGER}))
    (root / "checkpoints" / "latest").write_text(ckpt.name)
    return SimpleNamespace(run_dir=root, model=model, tokenizer=tokenizer, cfg=cfg, step=STEP)
