"""Where a run starts: its device, its config fitted to the prepared data, the checkpoint it
resumes from, its initial weights, and the model it continues (``train.init_from``) with that
model's ledger.

A continuation is charged its start model's whole charge. Words it would pay for twice, in its
own prepared data and inside that charge, are counted once (``overlap_words``): all of them when
both runs were prepared from the same data (a second phase of training on the same 10M words is
still a 10M-word model), and each split whose text is among those the start model's charge
provably includes (a mixture upcycled from specialists trained on it; data prepared before the
validation text was recorded keeps its validation split charged twice)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path

import torch

from thrifty.config import RunConfig
from thrifty.data.budget import Ledger
from thrifty.data.source import DataSource, open_source
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer
from thrifty.runs import latest_checkpoint, read_state, resolve_checkpoint
from thrifty.train.checkpoint import check_same_model, remove_stale

# how a continuation's ledger names its start model (an auxiliary charge and the prefix of the
# passes it carries), which soups and upcycled mixtures recognise
START_MODEL = "start model "


def pick_device(name: str) -> torch.device:
    """``train.device`` as a device. Under torchrun (``LOCAL_RANK`` set) a CUDA device without
    an index becomes this process's own GPU, ``cuda:LOCAL_RANK``, as torchrun expects: without
    it every rank of a node would train on ``cuda:0``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def uses_bf16(tc, device: torch.device) -> bool:
    """Whether the run's forward passes take bf16 autocast (``train.precision``; ``auto``: on
    CUDA)."""
    return tc.precision == "bf16" or (tc.precision == "auto" and device.type == "cuda")


def precision(tc, device: torch.device):
    """A factory of the forward pass's precision context: bf16 autocast where
    ``train.precision`` asks for it (``auto``: on CUDA), else full precision."""
    use_bf16 = uses_bf16(tc, device)

    def autocast():
        if use_bf16:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    return autocast


def fit_to_data(cfg: RunConfig) -> tuple[RunConfig, DataSource, DataSource]:
    """``cfg`` with the model settings its prepared dataset decides (text: the vocabulary) and
    the dataset's training and validation sources; a setting the data or model cannot take is
    a UserError."""
    train_source = open_source(cfg.data.path, "train")
    cfg = replace(cfg, model=train_source.fit(cfg.model))
    tokens = train_source.item_tokens(cfg.model)  # images: the patches of one image
    if tokens is not None:
        cfg = replace(cfg, data=replace(cfg.data, seq_len=tokens))
    if cfg.data.seq_len > cfg.model.max_seq_len:
        raise UserError(
            f"data.seq_len={cfg.data.seq_len} exceeds model.max_seq_len={cfg.model.max_seq_len}"
        )
    return cfg, train_source, open_source(cfg.data.path, "valid")


def resume_point(cfg: RunConfig, resume: str | None, create: bool) -> Path | None:
    """The checkpoint to resume from, if any; ``create`` makes the run folder (rank 0 only)."""
    run_dir = cfg.run_dir
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale(run_dir)  # half-written step_X.tmp folders of a crash or a full disk
    if resume not in (None, "auto"):
        return check_same_model(resolve_checkpoint(resume), cfg)
    existing = latest_checkpoint(run_dir) if run_dir.exists() else None
    if existing is not None and resume is None:
        raise UserError(
            f"{run_dir} already holds checkpoints; pass --resume auto to continue it, "
            "or choose another name= for a new run"
        )
    return check_same_model(existing, cfg)


def initial_model(cfg: RunConfig) -> Transformer:
    """The untrained network a fresh run of ``cfg`` starts from (model.vocab_size set): the same
    weights for the same train.seed, so "before training" can be measured outside the loop."""
    torch.manual_seed(cfg.train.seed)
    return Transformer(cfg.model)


def start_from(
    init_from: str, model: Transformer, manifest: dict, load: bool
) -> tuple[Path, Ledger]:
    """The checkpoint ``train.init_from`` names and its ledger (empty if it has none); with
    ``load`` (a fresh run, not a resumed one) its weights are copied into ``model``."""
    from safetensors.torch import load_file

    from thrifty.data.tokenizer import load_tokenizer, tokenizer_sha256

    start = resolve_checkpoint(init_from)
    state = read_state(start)  # checksums verified
    tokenizer = start.parent.parent / "tokenizer.json"
    wanted = manifest["ledger"]["tokenizer"].get("sha256")
    if tokenizer.is_file() and tokenizer_sha256(load_tokenizer(tokenizer)) != wanted:
        raise UserError(
            f"train.init_from={init_from}: its tokenizer differs from the one of data.path; "
            f"prepare the data with `thrifty prepare ... --tokenizer {tokenizer}`"
        )
    if load:
        try:
            model.load_state_dict(load_file(str(start / "model.safetensors")))
        except RuntimeError as e:
            raise UserError(
                f"train.init_from={init_from}: its weights do not fit this run's model section "
                f"(copy the model settings from {start}/config.yaml): {e}"
            ) from None
    return start, Ledger.from_dict(state["ledger"]) if "ledger" in state else Ledger()


def charge_start_model(ledger: Ledger, start: Path, start_ledger: Ledger) -> list[dict]:
    """Charge ``ledger`` for the model its run continues: the start model's whole charge as
    one auxiliary entry, less what this run's own prepared words charge again (module
    docstring); returns the start model's word sets, the exposure it carries along."""
    name = f"{START_MODEL}{start}"
    ledger.charge_aux_model(name, start_ledger.charged_words(), start_ledger.known_texts())
    ledger.overlap_words += _charged_again(ledger, start_ledger)
    return start_ledger.passed_on(name)


def _charged_again(ledger: Ledger, start: Ledger) -> int:
    """Of ``ledger``'s own prepared words, those provably inside ``start``'s charge."""
    derived = sum(int(w) for w in ledger.derived_words.values())
    train = max(ledger.train_words - int(ledger.synthetic_words) - derived, 0)
    if ledger.data_key() == start.data_key():  # the same prepared data: every word
        return train + int(ledger.prepared_words.get("valid", 0))
    known = set(start.known_texts())  # an upcycled mixture's: its specialists' texts
    again = train if ledger.texts and set(ledger.texts) <= known else 0
    if ledger.valid_texts and set(ledger.valid_texts) <= known:
        again += int(ledger.prepared_words.get("valid", 0))
    return again
