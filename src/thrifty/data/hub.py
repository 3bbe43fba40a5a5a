"""Fetch the demo's data sets from the Hugging Face Hub into a local cache (needs thrifty[hf]).

BabyLM text comes from ``cambridge-climb/BabyLM`` (config ``strict_small``), streamed until enough
words are cached; BLiMP from ``nyu-mll/blimp`` (one config per paradigm), written as the same
``*.jsonl`` files that the BLiMP repository ships, so the local and online paths read one format.
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


def _write_atomic(path: Path, lines) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)


def fetch_demo_data(cache: Path | None = None, words: int = 2_000_000) -> Path:
    """A folder with ``babylm/`` (≥ ``words`` words of training text) and ``blimp/``."""
    datasets = _datasets()
    root = (cache or default_cache()) / "demo-data"
    text_dir, blimp_dir = root / "babylm", root / "blimp"
    text_dir.mkdir(parents=True, exist_ok=True)
    blimp_dir.mkdir(parents=True, exist_ok=True)
    text_file = text_dir / "strict_small.train"
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
    return root
