"""``images``: a prepared image set as a data source (``thrifty.data.source``).

Item ``i`` is image ``i`` of the split with its label: ``batch`` gives ``images`` (B, C, H, W)
float in [0, 1] and ``labels`` (B,), and ``targets`` (B, classes) multi-hot where the set has
them (``mosaic``), and ``depth`` (B, 1, H, W) float in [0, 1] and ``segmentation`` (B, H, W)
long class maps where the set has them (``scenes``). The ledger's unit is images; one image
fills the patch grid of the model's ``patches`` stem (or the feature map of its ``conv`` stem),
so ``item_tokens`` is that grid's size (it becomes ``data.seq_len``) and every position charges
1 / grid of an image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from thrifty.data.images import load_split
from thrifty.data.source import SOURCES
from thrifty.data.tokens import load_manifest
from thrifty.errors import UserError


@SOURCES.register("images")
class ImageSource:
    @dataclass(kw_only=True)
    class Config:
        pass  # the image shape and classes are in the folder's manifest

    unit = "images"
    run_files = ()

    def __init__(self, path: Path, split: str) -> None:
        self.path, self.split = Path(path), split
        self.manifest = load_manifest(self.path)
        tensors = load_split(self.path, split)
        self.images, self.labels = tensors["images"], tensors["labels"]
        self.targets = tensors.get("targets")  # multi-hot (N, classes): multi-label sets
        self.depth = tensors.get("depth")  # (N, 1, H, W) uint8: scenes
        self.segmentation = tensors.get("segmentation")  # (N, H, W) uint8 classes: scenes
        self.tokens_per_image: int | None = None

    def num_items(self, seq_len: int) -> int:
        return len(self.labels)

    def batch(self, indices, seq_len: int) -> dict[str, Any]:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        out = {"images": self.images[index].float() / 255.0, "labels": self.labels[index]}
        if self.targets is not None:
            out["targets"] = self.targets[index]
        if self.depth is not None:
            out["depth"] = self.depth[index].float() / 255.0
        if self.segmentation is not None:
            out["segmentation"] = self.segmentation[index].long()
        return out

    @property
    def units_per_token(self) -> float:
        if self.tokens_per_image is None:
            raise RuntimeError("ImageSource.fit(model) decides the patches of an image")
        return 1.0 / self.tokens_per_image

    def fit(self, model):
        """``model`` with the image stem (patches or conv) sized to these images; a UserError
        for another stem or a patch size or stride that does not tile them."""
        stem = dict(model.stem)
        if stem.get("name") not in ("patches", "conv"):
            raise UserError(
                f"{self.path} holds images: set model.stem=patches (or conv; model.stem is "
                f"{stem.get('name')!r})"
            )
        channels, height, width = self.manifest["image_shape"]
        patch = int(stem.get("patch_size", 2))
        if stem["name"] == "conv":
            from thrifty.models.stem.conv import feature_side

            patch = height // feature_side(stem, height, str(self.path))  # the total stride
        if height != width or height % patch:
            raise UserError(
                f"model.stem.patch_size={patch} does not tile the {height}x{width} images of "
                f"{self.path}"
            )
        for key, value in (("image_size", height), ("channels", channels)):
            if stem.get(key) not in (None, value):
                raise UserError(
                    f"model.stem.{key}={stem[key]} does not match the images of {self.path} "
                    f"({value})"
                )
            stem[key] = value
        self.tokens_per_image = (height // patch) ** 2
        if self.tokens_per_image > model.max_seq_len:
            raise UserError(
                f"model.max_seq_len={model.max_seq_len} is below the {self.tokens_per_image} "
                f"patches of an image; raise it or model.stem.patch_size"
            )
        return replace(model, stem=stem)

    def item_tokens(self, model) -> int:
        return self.tokens_per_image
