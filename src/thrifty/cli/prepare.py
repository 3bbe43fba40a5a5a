"""`thrifty prepare`: turn text sources into a prepared dataset folder within a word budget."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from thrifty.cli.numbers import as_count


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `prepare` on the `thrifty` subcommand parsers."""
    p = subparsers.add_parser(
        "prepare",
        help="select words within a budget, train a tokenizer, write token files",
        description="Turn text sources into a prepared dataset folder: tokenizer.json, "
        "train.bin/valid.bin, docs.idx/valid.idx and manifest.json (with the ledger).",
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="a folder (.txt/.train/.dev/.test[.gz], recursive), a file, a .jsonl[.gz], "
        "or hf:OWNER/NAME[:CONFIG][@SPLIT]; for an image set: images:digits (scikit-learn's "
        "handwritten digits), images:mosaic (2x2 mosaics of them, multi-label), images:scenes "
        "(procedural shapes with exact depth and segmentation maps), images:minigrid-frames[:ENV] "
        "(rendered MiniGrid views, thrifty[rl]), images:hf:OWNER/NAME[:CONFIG][@SPLIT] (a "
        "Hub dataset's image and label columns, re-split; thrifty[hf]) or images:FOLDER "
        "(class sub-folders, or a labels.csv); for image-caption pairs (objective clip): "
        "pairs:digits",
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="dataset folder to create"
    )
    p.add_argument(
        "--budget-words",
        type=as_count,
        default=None,
        metavar="N",
        help="words to select, e.g. 10M or 10_000_000 (default: all words)",
    )
    p.add_argument(
        "--selection",
        choices=("prefix", "sample"),
        default="sample",
        help="prefix: first words in source order; sample: seeded, proportional per source",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed for sampling and the valid split"
    )
    p.add_argument(
        "--vocab-size", type=as_count, default=8192, metavar="N", help="BPE vocabulary size"
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=None,
        metavar="F",
        help="share held out for validation: of the words, as whole documents (default 0.01); "
        "of each class of an image set (default 0.1)",
    )
    p.add_argument(
        "--max-doc-words",
        type=as_count,
        default=512,
        metavar="N",
        help="longer lines are split at whitespace into documents of at most N words",
    )
    p.add_argument(
        "--text-field", default="text", metavar="NAME", help="JSONL / hub field holding the text"
    )
    p.add_argument(
        "--errors",
        choices=("strict", "replace"),
        default="strict",
        help="undecodable bytes: stop with an error, or replace them (one warning per file)",
    )
    p.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        metavar="PATH",
        help="reuse this tokenizer.json (or a prepared dataset's or run's) instead of training "
        "one; its training words are charged unless they are words this dataset already holds",
    )
    p.add_argument(
        "--tokenizer-words",
        type=as_count,
        default=None,
        metavar="N",
        help="words the --tokenizer was trained on, for a tokenizer with no prepared dataset or "
        "run beside it to say so (charged in full)",
    )
    images = p.add_argument_group("image sets (images:SOURCE)")
    images.add_argument(
        "--budget-images",
        type=as_count,
        default=None,
        metavar="N",
        help="images the model may read: the valid split and a seeded share of the training "
        "images (default: all)",
    )
    images.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of each class held out as the test split (probes report on it)",
    )
    images.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="PX",
        help="resize a folder's images to PX x PX (default: keep; all must match)",
    )
    images.add_argument(
        "--count", type=as_count, default=None, metavar="N", help="scenes to draw (default 3000)"
    )
    images.add_argument("--channels", type=int, default=1, choices=(1, 3), help="1: grey, 3: RGB")
    images.add_argument(
        "--image-column",
        default=None,
        metavar="NAME",
        help="images:hf: column holding the images (default: the first datasets.Image one)",
    )
    images.add_argument(
        "--label-column",
        default=None,
        metavar="NAME",
        help="images:hf: column holding the labels (default: the first ClassLabel one)",
    )
    images.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable images (with a count) instead of stopping",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if any(str(s).startswith("images:") for s in args.sources):
        return run_images(args)
    if any(str(s).startswith("pairs:") for s in args.sources):
        return run_pairs(args)
    from thrifty.data.budget import Ledger
    from thrifty.data.prepare import prepare  # tokenizers / numpy load only when needed

    start = time.perf_counter()
    manifest = prepare(
        args.sources,
        args.out,
        budget_words=args.budget_words,
        selection=args.selection,
        seed=args.seed,
        vocab_size=args.vocab_size,
        valid_fraction=0.01 if args.valid_fraction is None else args.valid_fraction,
        max_doc_words=args.max_doc_words,
        text_field=args.text_field,
        errors=args.errors,
        tokenizer_path=args.tokenizer,
        tokenizer_words=args.tokenizer_words,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    if not args.quiet:
        words, tokens, docs = manifest["words"], manifest["tokens"], manifest["documents"]
        print(f"prepared {args.out} in {time.perf_counter() - start:.1f} s")
        for split in ("train", "valid"):
            print(
                f"  {split}: {words[split]:,} words, {tokens[split]:,} tokens, "
                f"{docs[split]:,} documents"
            )
        print(f"  vocab {manifest['vocab_size']:,}, dtype {manifest['dtype']}")
    ledger = Ledger.from_dict(manifest["ledger"])
    if ledger.tokenizer_words() and not args.quiet:
        print(f"  the reused tokenizer's {ledger.tokenizer_words():,} training words are charged")
    for problem in ledger.violations():  # e.g. a reused tokenizer's words over the budget
        print(f"warning: {problem}; `thrifty audit {args.out}` will fail", file=sys.stderr)
    return 0


def run_images(args: argparse.Namespace) -> int:
    from thrifty.data.images import prepare_images
    from thrifty.errors import UserError

    if len(args.sources) != 1 or not str(args.sources[0]).startswith("images:"):
        raise UserError("an image set is prepared from one images:SOURCE at a time")
    manifest = prepare_images(
        str(args.sources[0]).removeprefix("images:"),
        args.out,
        budget_images=args.budget_images,
        valid_fraction=0.1 if args.valid_fraction is None else args.valid_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        image_size=args.image_size,
        channels=args.channels,
        skip_bad=args.skip_bad,
        overwrite=args.overwrite,
        count=args.count,
        image_column=args.image_column,
        label_column=args.label_column,
    )
    if not args.quiet:
        counts, shape = manifest["counts"], "x".join(map(str, manifest["image_shape"]))
        print(f"prepared {args.out}: {len(manifest['classes'])} classes, images {shape}")
        print("  " + ", ".join(f"{split} {n:,}" for split, n in counts.items()))
    return 0


def run_pairs(args: argparse.Namespace) -> int:
    from thrifty.data.pairs import prepare_pairs
    from thrifty.errors import UserError

    if len(args.sources) != 1:
        raise UserError("a pairs set is prepared from one pairs:SOURCE at a time")
    manifest = prepare_pairs(
        str(args.sources[0]).removeprefix("pairs:"),
        args.out,
        budget_pairs=args.budget_images,  # the image-set budget flag counts pairs here
        valid_fraction=0.1 if args.valid_fraction is None else args.valid_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    if not args.quiet:
        counts = manifest["counts"]
        print(
            f"prepared {args.out}: {len(manifest['classes'])} classes, "
            f"{len(manifest['templates'])} caption templates, vocab {manifest['vocab_size']}"
        )
        print("  " + ", ".join(f"{split} {n:,} pairs" for split, n in counts.items()))
    return 0
