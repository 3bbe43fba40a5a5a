"""``thrifty synthesize`` as a function: read the source, generate resumably, prepare, charge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thrifty.data.synthesize.dataset import finish
from thrifty.data.synthesize.entigraph import METHODS, generate, read_documents
from thrifty.data.synthesize.generators import make_generator
from thrifty.data.synthesize.writer import PartialOutput
from thrifty.errors import UserError


def synthesize(
    source: str | Path,
    out: str | Path,
    *,
    method: str = "entigraph",
    generator: str = "template",
    words: int | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    max_new_tokens: int = 256,
    generator_words: int | None = None,
    generator_model: str = "default",
    entities: str = "auto",
    max_entities: int = 16,
    tokenizer_path: str | Path | None = None,
    tokenizer_words: int | None = None,
    vocab_size: int = 8192,
    valid_fraction: float = 0.01,
    budget_words: int | None = None,
    overwrite: bool = False,
    log=None,
) -> dict[str, Any]:
    """Synthesize from ``source`` into the prepared dataset ``out``; return its manifest."""
    if method not in METHODS:
        raise UserError(f"--method {method!r}: choose from {', '.join(METHODS)}")
    if words is not None and words < 1:
        raise UserError(f"--words must be positive, got {words}")
    if entities not in ("auto", "rule", "generator"):
        raise UserError(f"--entities {entities!r}: choose from auto, rule, generator")
    external = generator.startswith(("hf:", "http://", "https://"))
    if external and generator_words is None:
        raise UserError(f"generator {generator}: declare its training words (--generator-words)")
    docs, sha, source_words = read_documents(source)
    gen = make_generator(generator, temperature=temperature, max_new_tokens=max_new_tokens,
                         declared_words=generator_words, model=generator_model)  # fmt: skip
    entities_from = entities if entities != "auto" else ("generator" if external else "rule")
    settings = {"method": method, **gen.describe(), "words": words, "seed": seed,
                "entities": entities_from, "max_entities": max_entities,
                "source_sha256": sha}  # fmt: skip
    partial = PartialOutput(Path(out), settings, overwrite)
    if partial.resumed and log is not None:
        log(f"resuming {partial.folder} after {partial.records:,} texts")
    generate(docs, gen, partial, method=method, words=words, seed=seed,
             entities_from=entities_from, max_entities=max_entities, log=log)  # fmt: skip
    record = {"path": str(source), "sha256": sha, "words": source_words, "documents": len(docs)}
    return finish(partial, gen, record, tokenizer_path=tokenizer_path and Path(tokenizer_path),
                  tokenizer_words=tokenizer_words, vocab_size=vocab_size,
                  valid_fraction=valid_fraction, budget_words=budget_words, seed=seed)  # fmt: skip
