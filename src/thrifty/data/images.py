"""Image sources -> a prepared image dataset folder (``modality: images``).

A prepared image set holds, per split (``train``, ``valid``, ``test``), ``{split}.safetensors``
with ``images`` (N, C, H, W) uint8 and ``labels`` (N,) int64, plus ``manifest.json``: the
image shape, the class names, the counts, the ledger (in images) and each source's sha256.
``test`` is held out from training and validation alike: probes and few-label curves report on
it, and choose on ``valid``.

Sources:

- ``digits``: the 1,797 real 8x8 handwritten digits that ship inside scikit-learn
  (``sklearn.datasets.load_digits``, 17 grey levels, scaled to 0..255);
- ``FOLDER``: images (PNG / JPEG, read with Pillow) in one sub-folder per class, or anywhere
  under FOLDER with a ``labels.csv`` (``file,label``) beside them; resized to ``image_size``.
- ``hf:OWNER/NAME[:CONFIG][@SPLIT]``: a Hugging Face dataset's image and label columns,
  converted like a folder's images (``thrifty.data.hub_images``; thrifty[hf]).
- ``mosaic``: 2x2 mosaics of those digits, each with multi-hot ``targets`` (N, 10) uint8 in
  its split file too (``thrifty.data.mosaics``; each split composed from its own digits).
- ``scenes``: ``count`` procedural RGB scenes of coloured shapes with exact ``depth``
  (N, 1, H, W) and ``segmentation`` (N, H, W) uint8 maps in the split files too
  (``thrifty.data.scenes``; synthetic).

The splits are stratified by class and drawn from ``seed``. Safetensors, never pickles: a
dataset from elsewhere can be opened safely.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.atomic import new_folder
from thrifty.data.budget import Ledger
from thrifty.data.tokens import FORMAT, MANIFEST_FILE
from thrifty.errors import UserError

SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# BabyLM's 10-epoch rule is for text; image pretraining runs hundreds of epochs (MAE: up to
# 1,600), so an image ledger caps passes there and the audit still catches a runaway loop.
IMAGE_MAX_EPOCHS = 1600
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def load_digits_source() -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """scikit-learn's digits: (N, 1, 8, 8) uint8 images, labels, class names, source row."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("images:digits needs scikit-learn; install thrifty[vision]") from None
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    source = {
        "path": "sklearn.datasets.load_digits",
        "sha256": hashlib.sha256(images.tobytes()).hexdigest(),
        "words_total": len(images),
        "words_used": len(images),
    }
    return images, digits.target.astype(np.int64), list(DIGIT_NAMES), source


def load_folder_source(
    folder: Path, image_size: int | None, channels: int, skip_bad: bool
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """The images under ``folder`` with labels from sub-folders or ``labels.csv``."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of images")
    labels_file = folder / "labels.csv"
    if labels_file.is_file():
        entries = _labels_csv(labels_file)
    else:
        entries = [
            (f, f.parent.name)
            for f in sorted(folder.rglob("*"))
            if f.suffix.lower() in IMAGE_SUFFIXES and f.parent != folder
        ]
    if not entries:
        raise UserError(f"{folder}: no images in class sub-folders and no labels.csv")
    items = ((file, file.read_bytes, label) for file, label in entries)
    pixels, names, digest = decode_all(items, channels, image_size, skip_bad, f"under {folder}")
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    images = stack_images(pixels)
    labels = np.array([index[n] for n in names], dtype=np.int64)
    source = {
        "path": str(folder),
        "sha256": digest,
        "words_total": len(entries),
        "words_used": len(images),
    }
    return images, labels, classes, source


def decode_all(
    items, channels: int, image_size: int | None, skip_bad: bool, origin: str
) -> tuple[list[np.ndarray], list, str]:
    """Decode ``(where, read_bytes, label)`` items: the pixels and labels of the readable ones
    and the sha256 of their bytes. An unreadable image names ``where`` (or, with ``skip_bad``,
    is skipped and counted in one warning naming ``origin``); so does a size that differs from
    the first image's."""
    from PIL import UnidentifiedImageError

    digest, pixels, labels, bad = hashlib.sha256(), [], [], 0
    for where, read_bytes, label in items:
        try:
            content = read_bytes()
            array = decode_image(io.BytesIO(content), channels, image_size)
        except (OSError, UnidentifiedImageError) as e:
            if not skip_bad:
                message = f"{where}: not a readable image ({e}); --skip-bad skips it"
                raise UserError(message) from None
            bad += 1
            continue
        if pixels and array.shape != pixels[0].shape:
            raise UserError(
                f"{where}: {array.shape[1]}x{array.shape[0]} differs from the first image's "
                f"{pixels[0].shape[1]}x{pixels[0].shape[0]}; pass --image-size to resize"
            )
        digest.update(content)
        pixels.append(array)
        labels.append(label)
    if bad:
        print(f"warning: skipped {bad} unreadable images {origin}", file=sys.stderr)
    return pixels, labels, digest.hexdigest()


def decode_image(file: Any, channels: int, image_size: int | None) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 pixels of an image file or buffer, read with Pillow: converted
    to grey or RGB and, with ``image_size``, resized bilinearly to a square of that side."""
    from PIL import Image

    with Image.open(file) as img:
        img = img.convert({1: "L", 3: "RGB"}[channels])
        if image_size is not None:
            img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def stack_images(pixels: list[np.ndarray]) -> np.ndarray:
    """(N, C, H, W) of equally sized (H, W) or (H, W, 3) arrays."""
    images = np.stack(pixels)
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


def _labels_csv(file: Path) -> list[tuple[Path, str]]:
    entries = []
    with open(file, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), 1):
            if line == 1 and row[:2] == ["file", "label"]:
                continue
            if len(row) != 2:
                raise UserError(f"{file}:{line}: expected file,label, got {row!r}")
            image = file.parent / row[0]
            if not image.is_file():
                raise UserError(f"{file}:{line}: {row[0]!r} names no image beside {file.name}")
            entries.append((image, row[1]))
    return entries


def stratified_splits(
    labels: np.ndarray, valid_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Indices of each split: every class shuffled by ``seed`` and cut in the same shares."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(len(members) * test_fraction)
        n_valid = round(len(members) * valid_fraction)
        parts["test"].append(members[:n_test])
        parts["valid"].append(members[n_test : n_test + n_valid])
        parts["train"].append(members[n_test + n_valid :])
    return {s: rng.permutation(np.concatenate(p)) for s, p in parts.items()}


def check_fractions(valid_fraction: float, test_fraction: float, noun: str) -> None:
    """A UserError for split fractions that leave no ``noun`` to train on."""
    for name, value in (("--valid-fraction", valid_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= value < 1:
            raise UserError(f"{name}={value}: must be in [0, 1)")
    if valid_fraction + test_fraction >= 1:
        raise UserError(f"--valid-fraction + --test-fraction must leave {noun} to train on")


def keep_budget(splits: dict[str, np.ndarray], budget: int | None, noun: str) -> None:
    """Cut ``splits["train"]`` to what a budget allows: it covers the valid items and a seeded
    share of the training ones (the splits are already shuffled)."""
    if budget is None:
        return
    keep = budget - len(splits["valid"])
    if keep < 1:
        raise UserError(
            f"--budget-images={budget}: must exceed the {len(splits['valid'])} "
            f"validation {noun} it includes"
        )
    splits["train"] = splits["train"][:keep]


def prepare_images(
    source: str,
    out: str | Path,
    *,
    budget_images: int | None = None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    image_size: int | None = None,
    channels: int = 1,
    skip_bad: bool = False,
    overwrite: bool = False,
    count: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> dict[str, Any]:
    """Write the prepared image set of ``source`` (``digits``, ``hf:...``, a folder, ...) to
    ``out``; ``image_column`` / ``label_column`` pick a Hub dataset's columns."""
    from safetensors.numpy import save_file

    out = Path(out)
    check_fractions(valid_fraction, test_fraction, "images")
    if channels not in (1, 3):
        raise UserError(f"--channels={channels}: must be 1 (grey) or 3 (RGB)")
    if out.exists() and (out / MANIFEST_FILE).is_file() and not overwrite:
        raise UserError(f"{out}: a prepared dataset is already here; pass --overwrite")
    targets = None  # multi-hot (N, classes) where the source has several labels per image
    extras: dict[str, np.ndarray] = {}  # per-image maps beside the images (scenes)
    if count is not None and source.partition(":")[0] not in ("scenes", "minigrid-frames"):
        raise UserError(f"--count={count} is for images:scenes or minigrid-frames, not {source}")
    if (image_column or label_column) and not source.startswith("hf:"):
        raise UserError(f"--image-column / --label-column are for images:hf: sources, not {source}")
    if source == "digits":
        images, labels, classes, row = load_digits_source()
    elif source == "mosaic":  # digits split first, then composed: thrifty.data.mosaics
        from thrifty.data.mosaics import mosaic_source

        m = mosaic_source(valid_fraction, test_fraction, seed)
        images, labels, targets, classes, row = m.images, m.labels, m.targets, m.classes, m.source
    elif source == "scenes":  # procedural, with exact depth and segmentation maps
        from thrifty.data.scenes import scene_source

        images, labels, classes, row, extras = scene_source(count, image_size, seed)
    elif source.partition(":")[0] == "minigrid-frames":  # MiniGrid renders: thrifty.rl.frames
        from thrifty.rl.frames import frame_source

        images, labels, classes, row = frame_source(source, count, image_size, seed)
    elif source.startswith("hf:"):  # a Hugging Face dataset: thrifty.data.hub_images
        from thrifty.data.hub_images import load_hub_source

        images, labels, classes, row = load_hub_source(
            source, image_size, channels, skip_bad, image_column, label_column
        )
    else:
        images, labels, classes, row = load_folder_source(
            Path(source), image_size, channels, skip_bad
        )
    if targets is None:
        splits = stratified_splits(labels, valid_fraction, test_fraction, seed)
    else:
        splits = m.splits
    keep_budget(splits, budget_images, "images")
    counts = {s: int(len(i)) for s, i in splits.items()}
    if counts["train"] == 0 or counts["valid"] == 0:
        raise UserError(f"{source}: too few images for train and valid splits ({counts})")
    ledger = Ledger(
        budget_words=budget_images,
        selection="all" if budget_images is None else "sample",
        seed=seed,
        sources=[row],
        prepared_words={"train": counts["train"], "valid": counts["valid"]},
        unit="images",
        max_epochs=IMAGE_MAX_EPOCHS,
    )
    manifest = {
        "format": FORMAT,
        "modality": "images",
        "image_shape": list(images.shape[1:]),
        "classes": classes,
        "counts": counts,
        "settings": {"valid_fraction": valid_fraction, "test_fraction": test_fraction},
        "ledger": ledger.to_dict(),
    }
    with new_folder(out) as tmp:
        for split, index in splits.items():
            tensors = {"images": np.ascontiguousarray(images[index]), "labels": labels[index]}
            if targets is not None:
                tensors["targets"] = targets[index]
            tensors.update({k: np.ascontiguousarray(v[index]) for k, v in extras.items()})
            save_file(tensors, str(tmp / f"{split}.safetensors"))
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def load_split(path: Path, split: str) -> dict[str, torch.Tensor]:
    """The ``images`` (uint8) and ``labels`` of one split of a prepared image set."""
    from safetensors.torch import load_file

    file = Path(path) / f"{split}.safetensors"
    if not file.is_file():
        raise UserError(f"{path}: no {split} split ({file.name}); prepare it again")
    return load_file(str(file))
