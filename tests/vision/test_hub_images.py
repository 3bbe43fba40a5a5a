"""Image sets from the Hub (``images:hf:...``) on a local copy: a parquet dataset in the Hub's
layout, read by ``datasets.load_dataset`` as a Hub repository is, holding real scikit-learn
digits as PNG; the prepared set must equal the same PNGs prepared as a folder."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from thrifty.cli.main import main
from thrifty.data.images import load_split, prepare_images
from thrifty.errors import UserError

datasets = pytest.importorskip("datasets")

PER_CLASS = 12


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """Never the network, and the datasets cache inside the test's folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


@pytest.fixture
def digits_copy(tmp_path):
    """(repo, folder): the same real digit PNGs as a Hub-layout parquet dataset (rows in the
    folder's file order) and as class sub-folders."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    folder, rows = tmp_path / "folder", {"note": [], "image": [], "label": []}
    for label in range(10):
        (folder / str(label)).mkdir(parents=True)
        for i in np.flatnonzero(digits.target == label)[:PER_CLASS]:
            png = _png(pixels[i])
            (folder / str(label) / f"{i:04d}.png").write_bytes(png)
            rows["image"].append({"bytes": png, "path": None})
            rows["label"].append(label)
            rows["note"].append(f"digit {i}")
    features = datasets.Features(
        {
            "note": datasets.Value("string"),  # columns before the image: found by type
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=[str(c) for c in range(10)]),
        }
    )
    repo = tmp_path / "owner" / "digits"
    (repo / "data").mkdir(parents=True)
    table = datasets.Dataset.from_dict(rows, features=features)
    table.to_parquet(str(repo / "data" / "train-00000-of-00001.parquet"))
    return repo, folder


def test_a_hub_dataset_prepares_like_the_same_images_in_a_folder(digits_copy, tmp_path):
    repo, folder = digits_copy
    options = dict(seed=3, image_size=4, budget_images=90)  # resized the same way too
    hub = prepare_images(f"hf:{repo}", tmp_path / "hub", **options)
    local = prepare_images(str(folder), tmp_path / "local", **options)
    assert hub["classes"] == local["classes"] == [str(c) for c in range(10)]
    assert hub["image_shape"] == local["image_shape"] == [1, 4, 4]
    assert hub["counts"] == local["counts"]
    assert hub["counts"]["train"] + hub["counts"]["valid"] == 90
    for split in ("train", "valid", "test"):
        a, b = load_split(tmp_path / "hub", split), load_split(tmp_path / "local", split)
        assert a["images"].equal(b["images"]) and a["labels"].equal(b["labels"])
    (source,), (local_source,) = hub["ledger"]["sources"], local["ledger"]["sources"]
    assert source["path"] == f"hf:{repo}" and source["sha256"] == local_source["sha256"]
    assert source["fingerprint"] and source["revision"] is None  # a local copy has no commit
    assert (source["image_column"], source["label_column"]) == ("image", "label")
    assert hub["ledger"]["unit"] == "images" and source["words_total"] == 10 * PER_CLASS
    manifest = json.loads((tmp_path / "hub" / "manifest.json").read_text())
    assert manifest["ledger"]["sources"][0]["sha256"] == source["sha256"]


def test_a_hub_name_config_and_split_reach_load_dataset(digits_copy, tmp_path, monkeypatch):
    repo, _ = digits_copy
    calls, load = [], datasets.load_dataset

    def hub(name, config=None, split=None, **kwargs):  # the Hub repo, served from the copy
        calls.append((name, config, split))
        return load(str(repo), split="train")

    monkeypatch.setattr(datasets, "load_dataset", hub)
    code = main(["prepare", "images:hf:owner/digits:default@train", "--out",
                 str(tmp_path / "d"), "--label-column", "label", "--quiet"])  # fmt: skip
    assert code == 0 and calls == [("owner/digits", "default", "train")]
    assert load_split(tmp_path / "d", "train")["images"].shape[1:] == (1, 8, 8)


def test_missing_columns_are_named(digits_copy, tmp_path):
    repo, _ = digits_copy
    with pytest.raises(UserError, match=r"--image-column=picture: no such column \(columns: note"):
        prepare_images(f"hf:{repo}", tmp_path / "d", image_column="picture")
    with pytest.raises(UserError, match=r"--image-column=note: holds .*string.*, not images"):
        prepare_images(f"hf:{repo}", tmp_path / "d", image_column="note")
    with pytest.raises(UserError, match="are for images:hf: sources, not digits"):
        prepare_images("digits", tmp_path / "d", label_column="label")
    assert not (tmp_path / "d").exists()


def test_an_unreadable_image_is_named_or_skipped(tmp_path, capsys):
    features = datasets.Features(
        {"img": datasets.Image(), "y": datasets.ClassLabel(names=["dark", "light"])}
    )
    rows = {"img": [], "y": []}
    for i in range(20):
        rows["img"].append({"bytes": _png(np.full((6, 6), 12 * i, np.uint8)), "path": None})
        rows["y"].append(i % 2)
    rows["img"][7] = {"bytes": b"not a png", "path": None}
    repo = tmp_path / "owner" / "broken"
    (repo / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(
        str(repo / "data" / "train-00000-of-00001.parquet")
    )
    with pytest.raises(UserError, match=rf"hf:{repo} row 7: not a readable image"):
        prepare_images(f"hf:{repo}", tmp_path / "d", valid_fraction=0.2)
    manifest = prepare_images(f"hf:{repo}", tmp_path / "d", valid_fraction=0.2, skip_bad=True)
    assert sum(manifest["counts"].values()) == 19 and manifest["classes"] == ["dark", "light"]
    assert manifest["ledger"]["sources"][0]["words_total"] == 20
    assert "skipped 1 unreadable images" in capsys.readouterr().err


def test_without_datasets_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(UserError, match=r"pip install 'thrifty\[hf\]'") as error:
        prepare_images("hf:owner/name", tmp_path / "d")
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="expected hf:OWNER/NAME"):
        prepare_images("hf:justaname", tmp_path / "d")
