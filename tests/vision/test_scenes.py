"""Procedural scenes (``images:scenes``): deterministic from the seed, exact depth and
segmentation maps with occlusion, labelled synthetic on the ledger, served by the image source."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.data.images import load_split, prepare_images
from thrifty.data.scenes import BACKGROUND_DEPTH, PALETTES, render, scene_source
from thrifty.data.source import open_source
from thrifty.errors import UserError


def test_the_nearer_shape_occludes_whatever_the_order():
    far = (0, (230, 40, 40), 8.0, 8.0, 6.0, 200)  # a circle
    near = (1, (40, 200, 60), 12.0, 12.0, 4.0, 50)  # a square over its lower right
    for shapes in ([far, near], [near, far]):
        image, depth, seg = render(shapes, (30, 30, 30), 20)
        assert seg[12, 12] == 2 and depth[0, 12, 12] == 50 and tuple(image[:, 12, 12]) == near[1]
        assert seg[5, 8] == 1 and depth[0, 5, 8] == 200
        assert seg[19, 0] == 0 and depth[0, 19, 0] == BACKGROUND_DEPTH


def test_scenes_are_seeded_and_their_maps_agree_with_the_pixels():
    images, labels, classes, row, maps = scene_source(40, 16, seed=3)
    again = scene_source(40, 16, seed=3)
    assert np.array_equal(images, again[0]) and np.array_equal(maps["depth"], again[4]["depth"])
    assert not np.array_equal(images, scene_source(40, 16, seed=4)[0])
    depth, seg = maps["depth"][:, 0], maps["segmentation"]
    assert images.shape == (40, 3, 16, 16) and classes == ["circle", "square", "triangle"]
    assert np.array_equal(depth == BACKGROUND_DEPTH, seg == 0)  # background exactly
    for k, palette in enumerate(PALETTES):  # every shape pixel has its class's colour
        colours = {tuple(c) for c in images.transpose(0, 2, 3, 1)[seg == k + 1]}
        assert colours <= set(palette)
    area = np.stack([(seg == k + 1).sum((1, 2)) for k in range(3)], 1)
    assert np.array_equal(labels, area.argmax(1))  # the label: the largest shape's class
    assert row["path"] == "synthetic:scenes" and row["synthetic"] is True


def test_prepared_scenes_carry_their_maps_to_the_batch(tmp_path):
    manifest = prepare_images("scenes", tmp_path / "s", count=60, image_size=16)
    assert manifest["image_shape"] == [3, 16, 16] and sum(manifest["counts"].values()) == 60
    source = manifest["ledger"]["sources"][0]
    assert source["synthetic"] is True and manifest["ledger"]["unit"] == "images"
    split = load_split(tmp_path / "s", "train")
    assert split["depth"].shape[1:] == (1, 16, 16) and split["segmentation"].shape[1:] == (16, 16)
    batch = open_source(tmp_path / "s", "train").batch([0, 3], seq_len=0)
    assert batch["depth"].shape == (2, 1, 16, 16) and 0 <= batch["depth"].min()
    assert batch["depth"].max() <= 1 and batch["segmentation"].dtype.is_floating_point is False
    assert int(batch["segmentation"].max()) <= 3


def test_count_is_for_scenes_only_and_digits_batches_are_unchanged(tmp_path):
    with pytest.raises(UserError, match="--count=50 is for images:scenes"):
        prepare_images("digits", tmp_path / "d", count=50)
    with pytest.raises(UserError, match="--count=3"):
        prepare_images("scenes", tmp_path / "s", count=3)
    prepare_images("digits", tmp_path / "d")
    batch = open_source(tmp_path / "d", "train").batch([0], seq_len=0)
    assert set(batch) == {"images", "labels"}
