"""Prepared image sets: scikit-learn's digits and a folder of images, their splits, manifest and
ledger in images, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from thrifty.data.images import load_split, prepare_images
from thrifty.data.source import open_source
from thrifty.errors import UserError


def test_digits_splits_are_disjoint_stratified_and_charged_in_images(tmp_path):
    manifest = prepare_images("digits", tmp_path / "d", seed=3)
    splits = {s: load_split(tmp_path / "d", s) for s in ("train", "valid", "test")}
    assert sum(len(t["labels"]) for t in splits.values()) == 1797
    assert manifest["image_shape"] == [1, 8, 8] and manifest["classes"][7] == "seven"
    for t in splits.values():  # every class in every split, in about the same share
        counts = np.bincount(t["labels"].numpy(), minlength=10)
        assert counts.min() > 0 and counts.max() < 2 * counts.min() + 2
    seen = [tuple(img.flatten().tolist()) for t in splits.values() for img in t["images"]]
    assert len(set(seen)) > 1700  # no image copied between splits (a few digits repeat)
    ledger = manifest["ledger"]
    assert ledger["unit"] == "images" and ledger["prepared_words"]["train"] == len(
        splits["train"]["labels"]
    )
    source = open_source(tmp_path / "d", "train")
    batch = source.batch([0, 5], seq_len=0)
    assert batch["images"].shape == (2, 1, 8, 8) and 0 <= batch["images"].min()
    assert batch["images"].max() <= 1 and source.unit == "images"


def test_the_budget_covers_train_and_valid_and_passes_the_audit(tmp_path):
    from thrifty.data.budget import Ledger

    manifest = prepare_images("digits", tmp_path / "d", budget_images=500)
    assert manifest["counts"]["train"] + manifest["counts"]["valid"] == 500
    assert Ledger.from_dict(manifest["ledger"]).violations() == []
    with pytest.raises(UserError, match="--budget-images=100: must exceed the 179 validation"):
        prepare_images("digits", tmp_path / "e", budget_images=100)


def write_folder(root, broken: bool = False):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    if broken:
        (root / "dog" / "bad.png").write_bytes(b"not a png")
    return root


def test_folder_of_class_subfolders_resized(tmp_path):
    manifest = prepare_images(
        str(write_folder(tmp_path / "img")), tmp_path / "d", image_size=8, channels=3,
        valid_fraction=0.2, test_fraction=0.2,
    )  # fmt: skip
    assert manifest["classes"] == ["cat", "dog"] and manifest["image_shape"] == [3, 8, 8]
    assert sum(manifest["counts"].values()) == 20


def test_a_corrupt_image_is_named_or_skipped(tmp_path, capsys):
    folder = write_folder(tmp_path / "img", broken=True)
    with pytest.raises(UserError, match=r"bad\.png: not a readable image"):
        prepare_images(str(folder), tmp_path / "d", valid_fraction=0.2)
    assert not (tmp_path / "d").exists()  # nothing half-written
    manifest = prepare_images(str(folder), tmp_path / "d", valid_fraction=0.2, skip_bad=True)
    assert sum(manifest["counts"].values()) == 20
    assert "skipped 1 unreadable" in capsys.readouterr().err


def test_labels_csv_names_the_first_mismatch(tmp_path):
    folder = write_folder(tmp_path / "img")
    (folder / "labels.csv").write_text("file,label\ncat/0.png,cat\ncat/99.png,cat\n")
    with pytest.raises(UserError, match=r"labels\.csv:3: 'cat/99\.png' names no image"):
        prepare_images(str(folder), tmp_path / "d")


def test_bad_fractions_and_existing_output(tmp_path):
    with pytest.raises(UserError, match="--test-fraction=1.5"):
        prepare_images("digits", tmp_path / "d", test_fraction=1.5)
    prepare_images("digits", tmp_path / "d")
    with pytest.raises(UserError, match="pass --overwrite"):
        prepare_images("digits", tmp_path / "d")
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["modality"] == "images"
