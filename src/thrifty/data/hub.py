"""Fetch the demo's data sets from the Hugging Face Hub into a local cache (needs thrifty[hf]).

BabyLM text comes from ``cambridge-climb/BabyLM`` (config ``strict_small``), streamed until enough
words are cached; BLiMP from ``nyu-mll/blimp`` (one config per paradigm), written as the same
``*.jsonl`` files that the BLiMP repository ships, so the local and online paths read one format.
Once the cache is complete the Hub is never contacted again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from thrifty.errors import UserError

log = logging.getLogger("thrifty.hub")

BABYLM_REPO, BABYLM_CONFIG = "cambridge-climb/BabyLM", "strict_small"
BLIMP_REPO = "nyu-mll/blimp"
BLIMP_PARADIGMS = 67  # one config of BLIMP_REPO per paradigm
TEXT_FILE = "strict_small.train"


def default_cache() -> Path:
    return Path(os.environ.get("THRIFTY_CACHE", Path.home() / ".cache" / "thrifty"))


def _datasets():
    try:
        import datasets
    except ImportError:
        raise UserError(
            "no local data and the `datasets` package is missing: pip install 'thrifty[hf]' to "
            "download from the Hugging Face Hub, or pass --data / set THRIFTY_DATA to a folder "
            "with babylm/ (text) and blimp/ (*.jsonl)"
        ) from None
    return datasets


def hub_failure(e: BaseException) -> str:
    """One line for an exception from the Hub client (its messages span several lines)."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _write_atomic(path: Path, lines) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        os.replace(tmp, path)
    finally:  # a download cut short leaves nothing behind
        tmp.unlink(missing_ok=True)


def _cached(root: Path) -> bool:
    """Whether ``root`` holds the whole demo data set (each file is written atomically)."""
    blimp = list((root / "blimp").glob("*.jsonl"))
    return (root / "babylm" / TEXT_FILE).is_file() and len(blimp) >= BLIMP_PARADIGMS


def fetch_demo_data(cache: Path | None = None, words: int = 2_000_000) -> Path:
    """A folder with ``babylm/`` (≥ ``words`` words of training text) and ``blimp/``.

    A complete cache is returned without contacting the Hub; offline without one, the error
    says how to run from local files instead.
    """
    root = (cache or default_cache()) / "demo-data"
    if _cached(root):
        return root
    datasets = _datasets()
    try:
        _download(datasets, root, words)
    except UserError:
        raise
    except Exception as e:  # the Hub client raises many types; offline is the usual cause
        raise UserError(
            f"cannot download the demo data from the Hugging Face Hub ({hub_failure(e)}); "
            "offline, pass --data or set THRIFTY_DATA to a folder with babylm/ (text) and "
            f"blimp/ (*.jsonl), or run once online to fill the cache {root}"
        ) from None
    return root


def _download(datasets, root: Path, words: int) -> None:
    text_dir, blimp_dir = root / "babylm", root / "blimp"
    text_dir.mkdir(parents=True, exist_ok=True)
    blimp_dir.mkdir(parents=True, exist_ok=True)
    text_file = text_dir / TEXT_FILE
    if not text_file.is_file():
        log.info("downloading %s words of %s/%s ...", f"{words:,}", BABYLM_REPO, BABYLM_CONFIG)
        stream = datasets.load_dataset(BABYLM_REPO, BABYLM_CONFIG, split="train", streaming=True)

        def lines():
            seen = 0
            for row in stream:
                text = row["text"].strip()
                if text:
                    yield text
                    seen += len(text.split())
                    if seen >= words:
                        return

        _write_atomic(text_file, lines())
    for paradigm in datasets.get_dataset_config_names(BLIMP_REPO):
        out = blimp_dir / f"{paradigm}.jsonl"
        if not out.is_file():
            log.info("downloading %s/%s ...", BLIMP_REPO, paradigm)
            rows = datasets.load_dataset(BLIMP_REPO, paradigm, split="train")
            _write_atomic(out, (json.dumps(dict(r)) for r in rows))
