"""EntiGraph synthetic continued pretraining (Yang et al. 2025; papers/entigraph.md):
``thrifty synthesize-world`` writes the card's small world (documents + closed-book questions);
``thrifty synthesize SOURCE --method entigraph --generator … --out DATA`` writes a prepared
dataset of generated text whose ledger charges the generator and the source documents.
Continue a run on it with ``thrifty train ... train.init_from=RUN data.path=DATA``
(configs/entigraph-cpt.yaml adds the card's 10% replay)."""

from __future__ import annotations

import argparse

from thrifty.cli.numbers import as_count


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synthesize",
        help="generate an EntiGraph (or rephrase) corpus from source documents",
        description="Extract each document's entities, then generate texts about single "
        "entities, every pair and a shuffle of the triples, the whole document in context, "
        "into a prepared dataset OUT. Resumable: an interrupted run leaves OUT.partial/, and "
        "the same command continues it.",
    )
    p.add_argument("source", help=".jsonl (text field) or text file of documents, or a world")
    p.add_argument("--out", required=True, help="prepared dataset folder to create")
    p.add_argument("--method", default="entigraph", help="entigraph or rephrase")
    p.add_argument(
        "--generator",
        default="template",
        help="template, run:PATH (a thrifty run), hf:NAME (local transformers model) or an "
        "OpenAI-compatible http(s):// base URL",
    )
    p.add_argument("--generator-model", default="default", help="model name sent to an endpoint")
    p.add_argument(
        "--generator-words",
        type=as_count,
        help="training words of an external generator (hf:, http): charged, marked non-compliant",
    )
    p.add_argument("--words", type=as_count, help="stop at this many synthetic words, e.g. 200k")
    p.add_argument("--seed", type=int, default=0, help="task order and sampling seed")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per generated text")
    p.add_argument(
        "--entities", default="auto", help="auto, rule (capitalized spans) or generator (JSON)"
    )
    p.add_argument("--max-entities", type=int, default=16, help="entities kept per document")
    p.add_argument("--tokenizer", help="reuse this tokenizer.json (the start run's)")
    p.add_argument("--tokenizer-words", type=as_count, help="training words of --tokenizer")
    p.add_argument("--vocab-size", type=int, default=8192, help="when training a tokenizer")
    p.add_argument("--valid-fraction", type=float, default=0.01, help="held-out texts")
    p.add_argument("--budget-words", type=as_count, help="word budget the ledger checks")
    p.add_argument("--overwrite", action="store_true", help="replace OUT and any OUT.partial/")
    p.set_defaults(func=run)

    p = sub.add_parser(
        "synthesize-world",
        help="write the EntiGraph card's small world: documents and closed-book questions",
        description="Invented entities and facts, each stated once (OUT/documents.jsonl), and "
        "cloze and multiple-choice questions on them, composed ones included "
        "(OUT/closed_book_qa/qa.jsonl).",
    )
    p.add_argument("--out", required=True, help="folder to create")
    p.add_argument("--docs", type=int, default=30, help="documents")
    p.add_argument("--seed", type=int, default=0, help="world seed")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=run_world)


def run(args: argparse.Namespace) -> int:
    from thrifty.data.budget import Ledger
    from thrifty.data.synthesize import synthesize

    manifest = synthesize(
        args.source, args.out, method=args.method, generator=args.generator, words=args.words,
        seed=args.seed, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
        generator_words=args.generator_words, generator_model=args.generator_model,
        entities=args.entities, max_entities=args.max_entities, tokenizer_path=args.tokenizer,
        tokenizer_words=args.tokenizer_words, vocab_size=args.vocab_size,
        valid_fraction=args.valid_fraction, budget_words=args.budget_words,
        overwrite=args.overwrite, log=print,
    )  # fmt: skip
    info = manifest["synthesize"]
    print(
        f"wrote {args.out}: {info['synthetic_words']:,} synthetic words in {info['texts']:,} "
        f"texts from {info['source']['documents']:,} documents ({info['source']['words']:,} words)"
    )
    for line in Ledger.from_dict(manifest["ledger"]).summary_lines():
        print("  " + line)
    return 0


def run_world(args: argparse.Namespace) -> int:
    from thrifty.data.synthesize.world import write_world

    world = write_world(args.out, seed=args.seed, docs=args.docs, overwrite=args.overwrite)
    items = world["questions"]
    composed = sum(q["composed"] for q in items)
    print(
        f"wrote {args.out}: {len(world['documents'])} documents, {len(world['facts'])} facts, "
        f"{len(items)} questions ({composed} composed)"
    )
    return 0
