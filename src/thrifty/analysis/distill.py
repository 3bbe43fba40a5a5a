"""Distillation through synthetic data: teacher samples as a text source, and a real:synthetic
training mix whose ledger charges the teacher (Kim et al. 2025, card §2.6).

1. :func:`write_synthetic`: sample unconditional text (prompt ``<s>``, temperature 1) from a
   run or a logit-averaged ensemble of runs into ``<out>/synthetic.txt``, one document per
   line (a folder `thrifty prepare` also reads), with ``synthetic.json`` describing the
   teacher, its ledgers and the sampling.
2. :func:`build_mix`: a prepared dataset for the student: the real dataset's training tokens
   plus ``ratio`` times as many synthetic words, encoded with the real dataset's tokenizer.
   The validation split stays the real one, so the student is judged on real text.

The ledger (BabyLM rules, papers/babylm_challenge.md): text made by a model trained within
the budget does not count against it, but that model's training data does. So the synthetic
words are recorded (``synthetic_words``) and not charged, and the teachers' training words are
charged as an auxiliary model, once per distinct dataset. A teacher trained on exactly the
student's real dataset adds no new words: its entry is recorded with 0 extra words, because
those words are already charged as the student's real data. The teachers' passes over their
training words reach the student through the synthetic text, so they go into the mix's
``exposure``: a student that trains on the real words again adds its passes to the teacher's
(``Ledger.max_passes``), and the epoch rule holds for the sum.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.atomic import replace_folder, write_text_atomic
from thrifty.data.budget import Ledger
from thrifty.data.corpus import count_words, truncate_words
from thrifty.data.tokenizer import BOS_ID, load_tokenizer, tokenizer_sha256
from thrifty.data.tokens import MANIFEST_FILE, SPLIT_FILES, load_manifest
from thrifty.errors import UserError
from thrifty.runs import load_model

SYNTHETIC_TEXT = "synthetic.txt"
SYNTHETIC_INFO = "synthetic.json"


def _fresh_folder(out: Path, overwrite: bool) -> Path:
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_synthetic(
    teachers: Sequence[str | Path],
    out: str | Path,
    *,
    words: int,
    seed: int = 0,
    temperature: float = 1.0,
    batch: int = 64,
    seq_len: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Sample ``words`` words of unconditional text from the teacher run(s); return the info."""
    from thrifty.analysis.sampling import sample_streams, split_documents

    if words < 1:
        raise UserError(f"--words must be positive, got {words}")
    loaded = [load_model(t, device) for t in teachers]
    tokenizer = loaded[0].tokenizer()
    sha = tokenizer_sha256(tokenizer)
    for t, m in zip(teachers, loaded):
        if tokenizer_sha256(m.tokenizer()) != sha:
            raise UserError(f"teachers need one tokenizer: {t} differs from {teachers[0]}")
    length = seq_len or min(m.cfg.data.seq_len for m in loaded)
    length = min(length, *(m.cfg.model.max_seq_len for m in loaded))  # <s> + samples
    generator = torch.Generator().manual_seed(seed)
    lines, total, tokens = [], 0, 0
    while total < words:
        streams = sample_streams(
            [m.model for m in loaded], batch, length, temperature=temperature, generator=generator
        )
        tokens += streams.numel() - batch
        for stream in streams.tolist():
            for doc in split_documents(stream):
                text = " ".join(tokenizer.decode(doc).split())  # one line, BabyLM word spacing
                n = count_words(text)
                if n == 0 or total >= words:
                    continue
                if total + n > words:
                    text, n = truncate_words(text, words - total), words - total
                lines.append(text)
                total += n
    out = Path(out)
    tmp = _fresh_folder(out, overwrite)
    text = "".join(line + "\n" for line in lines)
    (tmp / SYNTHETIC_TEXT).write_text(text, encoding="utf-8")
    info = {
        "words": total,
        "documents": len(lines),
        "tokens_sampled": tokens,
        "temperature": temperature,
        "seed": seed,
        "stream_tokens": length,
        "tokenizer_sha256": sha,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "teachers": [_teacher(m) for m in loaded],
    }
    write_text_atomic(tmp / SYNTHETIC_INFO, json.dumps(info, indent=2) + "\n")
    replace_folder(tmp, out)
    return info


def _teacher(member) -> dict[str, Any]:
    ledger_path = member.run_dir / "ledger.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() else member.ledger()
    name = Path(member.run_dir).name
    return {
        "run": str(member.run_dir),
        "checkpoint": member.checkpoint.name,
        "data": member.cfg.data.path,
        "train_words": int(ledger.get("prepared_words", {}).get("train", 0)),
        "words_seen": float(ledger.get("words_seen", 0.0)),
        "fingerprint": _fingerprint(ledger),
        # its passes over its words (and theirs before it), which the student inherits
        "exposure": Ledger.from_dict(ledger or {}).passed_on(f"distillation teacher {name}"),
    }


def _fingerprint(ledger: dict) -> str:
    """What identifies the words a dataset holds: its sources, selection and split."""
    keys = ("budget_words", "selection", "seed", "sources", "prepared_words")
    blob = json.dumps({k: ledger.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def parse_ratio(text: str) -> float:
    """``"1:1"`` -> 1.0 synthetic word per real word; ``"1:3"`` -> 3.0."""
    try:
        real, synthetic = (float(x) for x in str(text).split(":"))
    except ValueError:
        raise UserError(f"ratio {text!r} must look like REAL:SYNTHETIC, e.g. 1:1") from None
    if real <= 0 or synthetic < 0:
        raise UserError(f"ratio {text!r}: the real part must be positive")
    return synthetic / real


def build_mix(
    real: str | Path,
    synthetic: str | Path,
    out: str | Path,
    *,
    ratio: float = 1.0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """A prepared dataset: ``real``'s splits plus ``ratio`` × its training words of synthetic
    text from the folder ``synthetic``; returns the new manifest."""
    real, synthetic, out = Path(real), Path(synthetic), Path(out)
    manifest = load_manifest(real)
    info_path = synthetic / SYNTHETIC_INFO
    if not info_path.is_file():
        raise UserError(f"{synthetic}: no {SYNTHETIC_INFO} (made by thrifty distill-data)")
    info = json.loads(info_path.read_text())
    real_words = int(manifest["words"]["train"])
    wanted = round(ratio * real_words)
    texts = _take(synthetic / SYNTHETIC_TEXT, wanted)
    tokenizer = load_tokenizer(real / "tokenizer.json")
    encoded = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    dtype = np.dtype(manifest["dtype"])
    synth = np.fromiter(
        (t for ids in encoded for t in (BOS_ID, *ids)),
        dtype=dtype,
        count=sum(map(len, encoded)) + len(encoded),
    )
    tmp = _fresh_folder(out, overwrite)
    try:
        for name in ("tokenizer.json", *SPLIT_FILES["valid"]):
            shutil.copyfile(real / name, tmp / name)
        bin_name, idx_name = SPLIT_FILES["train"]
        real_tokens = np.fromfile(real / bin_name, dtype=dtype)
        np.concatenate([real_tokens, synth]).tofile(tmp / bin_name)
        offsets = np.fromfile(real / idx_name, dtype="<i8")
        lengths = np.array([len(ids) + 1 for ids in encoded], dtype="<i8")
        np.concatenate([offsets, offsets[-1] + np.cumsum(lengths)]).astype("<i8").tofile(
            tmp / idx_name
        )
        manifest = _mixed_manifest(manifest, info, synthetic, len(synth), len(encoded), wanted)
        write_text_atomic(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _unknown_exposure(teacher: dict) -> list[dict[str, Any]]:
    """A teacher described by an older synthetic.json: its passes over files not on record,
    which therefore count as shared with every word of the student (in doubt, they add up)."""
    passes = teacher["words_seen"] / teacher["train_words"] if teacher["train_words"] else 0.0
    name = f"distillation teacher {Path(teacher['run']).name}: training data"
    return [{"name": name, "words": teacher["train_words"], "passes": passes, "sources": []}]


def _take(path: Path, wanted: int) -> list[str]:
    """The first ``wanted`` words of a synthetic.txt, as documents (the last one cut)."""
    texts, total = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if total >= wanted:
                break
            n = count_words(line)
            if n == 0:
                continue
            if total + n > wanted:
                line, n = truncate_words(line, wanted - total), wanted - total
            texts.append(line.strip())
            total += n
    if total < wanted:
        raise UserError(
            f"{path} holds {total:,} words but the mix needs {wanted:,}; sample more with "
            f"thrifty distill-data ... --words {wanted}"
        )
    return texts


def _mixed_manifest(
    manifest: dict, info: dict, folder: Path, tokens: int, docs: int, words: int
) -> dict:
    manifest = json.loads(json.dumps(manifest))  # a deep copy
    ledger = Ledger.from_dict(manifest["ledger"])
    real_fingerprint = _fingerprint(manifest["ledger"])
    distinct = {}
    for t in info["teachers"]:
        distinct.setdefault(t["fingerprint"], t)
    extra = sum(t["train_words"] for f, t in distinct.items() if f != real_fingerprint)
    names = ", ".join(Path(t["run"]).name for t in info["teachers"])
    note = "" if extra else "; trained on this dataset's real words, already charged"
    ledger.charge_aux_model(f"distillation teacher ({names}){note}", extra)
    for t in distinct.values():
        ledger.exposure += t.get("exposure", _unknown_exposure(t))
    ledger.prepared_words["train"] += words
    ledger.synthetic_words += words
    ledger.sources.append(
        {
            "path": str(folder / SYNTHETIC_TEXT),
            "sha256": info["sha256"],
            "words_total": info["words"],
            "words_used": words,
        }
    )
    manifest["tokens"]["train"] += tokens
    manifest["words"]["train"] += words
    manifest["documents"]["train"] += docs
    manifest["ledger"] = ledger.to_dict()
    real_words = manifest["words"]["train"] - words
    manifest["distill"] = {
        "synthetic": str(folder),
        "synthetic_words": words,
        "real_words": real_words,
        "synthetic_per_real": words / max(real_words, 1),
        "teachers": info["teachers"],
        "temperature": info["temperature"],
    }
    return manifest
