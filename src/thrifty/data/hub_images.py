"""An image set from the Hugging Face Hub: ``images:hf:OWNER/NAME[:CONFIG][@SPLIT]``.

The rows come from ``datasets.load_dataset`` (thrifty[hf]); the image column is the first
``datasets.Image`` feature and the label column the first ``ClassLabel`` (its names become the
class names) unless the caller names them. Images are read undecoded and converted by Pillow
exactly as a folder's files are (``thrifty.data.images.decode_all``), so an unreadable one is
named or skipped the same way, and the source's sha256 is over the stored image bytes.

Not streamed: a prepared image set holds every image (the stratified splits need every label
first), so streaming would save nothing, while a downloaded dataset is cached (a second
``prepare`` reads it offline with ``HF_DATASETS_OFFLINE=1``) and carries the fingerprint and
revision that the manifest records.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from thrifty.data.corpus import parse_hf_spec
from thrifty.data.hub import hub_failure
from thrifty.data.images import decode_all, stack_images
from thrifty.errors import UserError

REVISION = re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])")  # a Hub commit in a cache path


def load_hub_source(
    spec: str,
    image_size: int | None,
    channels: int,
    skip_bad: bool,
    image_column: str | None = None,
    label_column: str | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """(N, C, H, W) uint8 images, labels, class names and the source row of a Hub dataset."""
    data = _load(spec)
    image_key, label_key = _columns(spec, data.features, image_column, label_column)
    fingerprint = getattr(data, "_fingerprint", None)
    unlabelled = -1 if isinstance(data.features[label_key], _datasets().ClassLabel) else None
    raw = data.select_columns([image_key, label_key])
    raw = raw.cast_column(image_key, _datasets().Image(decode=False))  # bytes, for Pillow

    def items():
        for row, example in enumerate(raw):
            value, where = example[label_key], f"{spec} row {row}"
            if value is None or value == unlabelled:  # ClassLabel's -1: no label
                raise UserError(f"{where}: no label in column {label_key!r}")
            yield where, lambda stored=example[image_key]: _image_bytes(stored), value

    pixels, values, digest = decode_all(items(), channels, image_size, skip_bad, f"of {spec}")
    if not pixels:
        raise UserError(f"{spec}: no readable images")
    labels, classes = _labels(data.features[label_key], values)
    source = {
        "path": spec,
        "sha256": digest,
        "words_total": len(raw),
        "words_used": len(pixels),
        "fingerprint": fingerprint,
        "revision": _revision(data),
        "image_column": image_key,
        "label_column": label_key,
    }
    return stack_images(pixels), labels, classes, source


def _datasets():
    try:
        import datasets  # optional: only hub sources need it
    except ImportError:
        raise UserError(
            "images:hf: reads Hub datasets with the `datasets` package: pip install 'thrifty[hf]'"
        ) from None
    return datasets


def _load(spec: str):
    name, config, split = parse_hf_spec(spec)
    datasets = _datasets()
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as e:  # the hub raises many types; the user needs the message
        raise UserError(
            f"{spec}: cannot load the dataset from the Hugging Face Hub ({hub_failure(e)}); "
            "offline, load it once online (it is then cached; HF_DATASETS_OFFLINE=1 reads the "
            "cache), or pass a local copy as images:FOLDER"
        ) from None


def _columns(spec: str, features, image_column: str | None, label_column: str | None):
    """The image and label column names: as given, else the first Image / ClassLabel feature."""
    datasets = _datasets()
    listed = ", ".join(features)
    for flag, given in (("--image-column", image_column), ("--label-column", label_column)):
        if given is not None and given not in features:
            raise UserError(f"{spec}: {flag}={given}: no such column (columns: {listed})")
    image = image_column or next(
        (k for k, f in features.items() if isinstance(f, datasets.Image)), None
    )
    if image is None:
        raise UserError(f"{spec}: no image column (columns: {listed}); pass --image-column")
    if not isinstance(features[image], datasets.Image):
        raise UserError(f"{spec}: --image-column={image}: holds {features[image]}, not images")
    label = label_column or next(
        (k for k, f in features.items() if isinstance(f, datasets.ClassLabel)), None
    )
    if label is None:
        raise UserError(f"{spec}: no ClassLabel column (columns: {listed}); pass --label-column")
    return image, label


def _image_bytes(stored: dict | None) -> bytes:
    """The encoded image of an undecoded ``datasets.Image`` value (inline bytes or a file)."""
    if stored is None:
        raise OSError("the row has no image")
    if stored.get("bytes") is not None:
        return stored["bytes"]
    if stored.get("path"):
        with open(stored["path"], "rb") as f:
            return f.read()
    raise OSError("neither bytes nor a path")


def _labels(feature, values: list) -> tuple[np.ndarray, list[str]]:
    """Label ids and class names: a ClassLabel's own, else the sorted distinct values."""
    names = getattr(feature, "names", None)
    if names:
        return np.asarray(values, dtype=np.int64), list(names)
    classes = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[str(v)] for v in values], dtype=np.int64), classes


def _revision(data) -> str | None:
    """The Hub commit the rows were read at, from the cache path (None for a local copy)."""
    for file in getattr(data, "cache_files", None) or []:
        if found := REVISION.search(file.get("filename", "")):
            return found.group(0)
    return None
