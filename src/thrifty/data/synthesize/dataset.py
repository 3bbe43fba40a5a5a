"""A finished synthesis as a prepared dataset, and what its ledger charges.

The generated texts are prepared like any source (``thrifty.data.prepare``; with
``tokenizer_path``, the start model's tokenizer, so ``train.init_from`` accepts the data), and the
ledger is then told where the words came from (BabyLM rules, papers/babylm_challenge.md):

- every prepared word, training and validation, is model-generated: ``synthetic_words``, not
  charged;
- the source documents, which the generator read in context for every text, are charged as an
  auxiliary entry (their words once, whatever the number of prompts; ``texts``: their sha256);
- the generator is charged by its kind (:mod:`~thrifty.data.synthesize.generators`): the
  template rule 0 words, a thrifty run its ledger's charged words (and its passes as exposure),
  an external model the declared words, marked not BabyLM-compliant.

The folder also keeps ``synthetic.jsonl`` (every text with its document, task kind and entities)
and ``synthesize.json`` (settings, source, words, tasks).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from thrifty.atomic import replace_folder, write_text_atomic
from thrifty.data.budget import Ledger
from thrifty.data.prepare import prepare
from thrifty.data.synthesize.writer import PartialOutput
from thrifty.data.tokens import MANIFEST_FILE, load_manifest
from thrifty.errors import UserError

SYNTHETIC_TEXTS = "synthetic.jsonl"
INFO = "synthesize.json"


def finish(
    partial: PartialOutput,
    generator: Any,
    source: dict[str, Any],
    *,
    tokenizer_path: Path | None = None,
    tokenizer_words: int | None = None,
    vocab_size: int = 8192,
    valid_fraction: float = 0.01,
    budget_words: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Prepare the texts of ``partial`` into ``partial.out`` and return the manifest."""
    records = [json.loads(x) for x in partial.texts_path.read_text("utf-8").splitlines()]
    kept = [r for r in records if r["text"].strip()]
    if not kept:
        raise UserError(f"the generator wrote no text for {source['path']}")
    text_file = partial.folder / SYNTHETIC_TEXTS
    write_text_atomic(text_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    built = partial.folder / "dataset"
    manifest = prepare([str(text_file)], built, budget_words=None, seed=seed,
                       vocab_size=vocab_size, valid_fraction=valid_fraction,
                       tokenizer_path=tokenizer_path, tokenizer_words=tokenizer_words,
                       overwrite=True, progress=False)  # fmt: skip
    shutil.copyfile(text_file, built / SYNTHETIC_TEXTS)
    ledger = Ledger.from_dict(manifest["ledger"])
    ledger.budget_words = budget_words
    ledger.synthetic_words = sum(int(v) for v in ledger.prepared_words.values())
    for s in ledger.sources:
        s["path"] = str(partial.out / SYNTHETIC_TEXTS)  # where it lives once finished
    ledger.charge_aux_model(
        f"EntiGraph source documents read in context ({source['path']})",
        source["words"],
        texts=[source["sha256"]],
    )
    generator.charge(ledger)
    kinds: dict[str, int] = {}
    for r in kept:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    info = {
        **partial.settings,
        "source": source,
        "texts": len(kept),
        "texts_by_kind": kinds,
        "synthetic_words": ledger.synthetic_words,
    }
    ledger.details["synthesis"] = f"{partial.settings['method']} by {generator.spec}"
    manifest["ledger"] = ledger.to_dict()
    manifest["synthesize"] = info
    write_text_atomic(built / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    write_text_atomic(built / INFO, json.dumps(info, indent=2) + "\n")
    load_manifest(built)  # reads back
    replace_folder(built, partial.out)
    partial.discard()
    return manifest
