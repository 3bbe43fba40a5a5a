"""``scenes``: procedural RGB scenes with an exact depth map and an exact segmentation map, the
small-scale check of MultiMAE (Bachmann et al. 2022; ``papers/multimae.md``).

A scene is 1 to 3 shapes (circle, square, triangle) on a flat background colour. Each shape has
its own depth; nearer shapes are painted last, so they occlude farther ones, and the maps are
exact rather than the paper's pseudo-labels:

- ``depth`` (1, H, W) uint8: the depth of the nearest surface at each pixel, background 255;
- ``segmentation`` (H, W) uint8: the class of the visible shape at each pixel (1 circle,
  2 square, 3 triangle), 0 background.

Two cues tie the modalities together, as they are tied in real scenes: a shape's apparent size
shrinks with its depth (perspective), so RGB says something about depth; and each class takes
its colour from its own two-colour palette, so segmentation says something about RGB.

``labels`` is the class of the shape that covers the most pixels (0 circle, 1 square,
2 triangle), for probes. Everything is drawn from ``seed``; the ledger calls the source
``synthetic:scenes``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from thrifty.errors import UserError

CLASSES = ("circle", "square", "triangle")
# Two colours per class: segmentation predicts colour coarsely, not exactly.
PALETTES = (
    ((230, 40, 40), (240, 140, 30)),  # circle: red, orange
    ((40, 200, 60), (30, 200, 200)),  # square: green, cyan
    ((50, 70, 230), (200, 50, 220)),  # triangle: blue, magenta
)
BACKGROUNDS = ((30, 30, 30), (90, 90, 90), (150, 140, 120), (60, 40, 80))
BACKGROUND_DEPTH = 255
DEPTHS = (40, 215)  # range of a shape's depth (uint8); nearer is smaller
DEFAULT_COUNT = 3000
DEFAULT_SIZE = 32


def covers(kind: int, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """(size, size) bool: the pixels (sampled at their centres) that shape ``kind`` covers."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    dx, dy = x - cx, y - cy
    if kind == 0:  # circle of radius r
        return dx**2 + dy**2 <= r**2
    if kind == 1:  # axis-aligned square of the circle's area
        half = r * 0.886
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    top, bottom = cy - r, cy + 0.8 * r  # upright isosceles triangle
    inside = (y >= top) & (y <= bottom)
    return inside & (np.abs(dx) <= (y - top) / (bottom - top) * r)


def render(
    shapes: list[tuple[int, tuple[int, int, int], float, float, float, int]],
    background: tuple[int, int, int],
    size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (3, H, W), depth (1, H, W) and segmentation (H, W) of ``shapes``, each
    (class, colour, cx, cy, radius, depth), in any order: the nearest shape wins a pixel."""
    image = np.empty((3, size, size), dtype=np.uint8)
    image[:] = np.asarray(background, dtype=np.uint8)[:, None, None]
    depth = np.full((1, size, size), BACKGROUND_DEPTH, dtype=np.uint8)
    segmentation = np.zeros((size, size), dtype=np.uint8)
    for kind, colour, cx, cy, r, d in sorted(shapes, key=lambda s: -s[5]):  # far to near
        mask = covers(kind, cx, cy, r, size)
        image[:, mask] = np.asarray(colour, dtype=np.uint8)[:, None]
        depth[0, mask] = d
        segmentation[mask] = kind + 1
    return image, depth, segmentation


def random_scene(rng: np.random.Generator, size: int) -> list[tuple]:
    """1 to 3 shapes at distinct depths, each sized by its depth (nearer is larger)."""
    count = int(rng.integers(1, 4))
    depths = rng.choice(np.arange(DEPTHS[0], DEPTHS[1] + 1, 5), size=count, replace=False)
    shapes = []
    for d in depths:
        kind = int(rng.integers(len(CLASSES)))
        colour = PALETTES[kind][int(rng.integers(2))]
        r = size * 0.1 + size * 0.22 * (DEPTHS[1] - d) / (DEPTHS[1] - DEPTHS[0])
        cx, cy = rng.uniform(r * 0.5, size - r * 0.5, size=2)
        shapes.append((kind, colour, float(cx), float(cy), float(r), int(d)))
    return shapes


def scene_source(
    count: int | None, image_size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any], dict[str, np.ndarray]]:
    """``count`` scenes: images (N, 3, S, S), labels, class names, the ledger's source row, and
    the extra maps for the split files (``depth``, ``segmentation``)."""
    count = DEFAULT_COUNT if count is None else count
    size = DEFAULT_SIZE if image_size is None else image_size
    if count < 10:
        raise UserError(f"--count={count}: scenes need at least 10 (train, valid and test)")
    if size < 8:
        raise UserError(f"--image-size={size}: scenes need at least 8 pixels a side")
    rng = np.random.default_rng([seed, 2])  # its own stream: the split draws from ``seed``
    images = np.empty((count, 3, size, size), dtype=np.uint8)
    depth = np.empty((count, 1, size, size), dtype=np.uint8)
    segmentation = np.empty((count, size, size), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    for i in range(count):
        background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        images[i], depth[i], segmentation[i] = render(random_scene(rng, size), background, size)
        area = np.bincount(segmentation[i].ravel(), minlength=len(CLASSES) + 1)[1:]
        labels[i] = int(area.argmax())  # a shape always shows: the nearest is never occluded
    digest = hashlib.sha256()
    for array in (images, depth, segmentation):
        digest.update(array.tobytes())
    row = {
        "path": "synthetic:scenes",
        "synthetic": True,
        "generator": {"count": count, "image_size": size, "seed": seed},
        "sha256": digest.hexdigest(),
        "words_total": count,
        "words_used": count,
    }
    return images, labels, list(CLASSES), row, {"depth": depth, "segmentation": segmentation}
