"""End-to-end fine-tuning of an image encoder on N labels, pretrained vs random init.

The label-efficiency protocol of ``thrifty.eval.label_efficiency`` (Xu et al. 2019), for image
sets: for N on a grid and several seeds, fine-tune (a) the run's encoder and (b) its randomly
initialised twin (same architecture and ``train.seed``: ``initial_model``, as ``thrifty probe``
compares) with a linear head on the mean-pooled patch features, every weight trained, on the
same seeded, nested, class-stratified N training labels (``stratified_order``), and score both
on the image set's ``test`` split. Shared with the text protocol, not copied: the early-stopping
split of the N labels (``split_labels``), the per-arm learning rate chosen from one grid on that
split (``tuned_arm``), the loop (``fit``: AdamW, warmup + cosine, best epoch, patience), the
labels-saved summary (``summarize``) and the plot.

Choices particular to images:

- The image set's ``valid`` split is never read: N counts every label that training or any
  choice sees (the frozen-feature probe's settings on ``valid`` are another protocol).
- The early-stopping share holds one label per class at least, as for text, and the rest
  trains. Below two labels per class (N = 10 digits) no share can be held out without leaving
  its classes untrained, so there the epoch and the lr are chosen on the N training labels
  themselves, for both arms alike (each run records its ``selection``).
- The head is a parameter-free LayerNorm, dropout and one linear layer: the norm gives the new
  head the same input scale from either encoder (the probe standardises its features for the
  same reason), and both arms of a seed start from the same head weights.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from thrifty.atomic import write_text_atomic
from thrifty.data.images import load_split
from thrifty.errors import UserError
from thrifty.eval.finetune import Settings, stratified_order
from thrifty.eval.label_efficiency import ARMS, plot_curve, split_labels, summarize, tuned_arm
from thrifty.models.stem.patches import PatchStem, mean_features
from thrifty.runs import build_model

log = logging.getLogger("thrifty.finetune")

DEFAULT_SIZES = (10, 20, 50, 100, 200)
DEFAULT_LRS = (3e-4, 1e-3, 3e-3)
RESULT_FILE = "finetune_images.json"
UNUSED_SETTINGS = ("lr", "max_seq_len", "group_by_length")  # the grid sets lr; text-only knobs


@dataclass
class ImageSet:
    """Labelled images in the shape ``fit`` and ``evaluate`` read (as ``Encoded`` for text)."""

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> ImageSet:
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSet(self.images[torch.from_numpy(idx)], self.labels[idx])

    def lengths(self) -> np.ndarray:
        return np.zeros(len(self), dtype=np.int64)  # one size: nothing to group by

    def inputs(self, idx, device: torch.device | str = "cpu") -> tuple[torch.Tensor]:
        index = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return (self.images[index].to(device).float() / 255.0,)


class LinearHead(nn.Module):
    """Pooled features (B, C) -> class logits (B, K): parameter-free LayerNorm, dropout, linear."""

    def __init__(self, d_model: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(F.layer_norm(features, features.shape[-1:])))


class ImageClassifier(nn.Module):
    """An image encoder (a Transformer with a patches stem) and a linear head on its mean."""

    def __init__(self, backbone: nn.Module, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = LinearHead(backbone.cfg.d_model, num_labels, dropout)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(mean_features(self.backbone, images))  # (B, num_labels)


def image_classifier(
    loaded, weights: dict, num_labels: int, seed: int, dropout: float
) -> ImageClassifier:
    """A fresh copy of an encoder with ``weights`` and a head whose weights depend on ``seed``."""
    backbone = build_model(loaded.cfg, loaded.state)
    backbone.load_state_dict(weights)
    torch.manual_seed(seed)
    model = ImageClassifier(backbone, num_labels, dropout)
    return model.to(next(loaded.model.parameters()).device)


def finetune_images(
    loaded,
    random_init: nn.Module,
    data_path: str | Path,
    *,
    sizes: list[int] | tuple[int, ...] = DEFAULT_SIZES,
    seeds: list[int] | tuple[int, ...] = (0, 1, 2),
    lrs: list[float] | tuple[float, ...] = DEFAULT_LRS,
    settings: Settings | None = None,
    valid_fraction: float = 0.2,
    target: float | None = None,
) -> dict:
    """Test accuracy of both arms per N and seed, the summary and the labels saved.

    ``loaded``: the run (``runs.load_model``); ``random_init``: its untrained twin."""
    if not isinstance(loaded.model.embed, PatchStem):
        raise UserError("--finetune reads image encoders: this run's model has no patches stem")
    if not 0 < valid_fraction < 1:
        raise UserError(f"--valid-fraction={valid_fraction}: must be in (0, 1)")
    pool, test = (_image_set(data_path, split) for split in ("train", "test"))
    sizes = sorted({int(n) for n in sizes})
    if sizes[-1] > len(pool):
        raise UserError(f"--sizes: N={sizes[-1]} exceeds the {len(pool)} training images")
    num_labels = int(max(pool.labels.max(), test.labels.max())) + 1
    s = settings or default_settings()
    weights = {"pretrained": loaded.model.state_dict(), "random_init": random_init.state_dict()}
    arms: dict = {arm: {str(n): [] for n in sizes} for arm in ARMS}
    runs = []
    for seed in seeds:
        order = stratified_order(pool.labels, seed)
        for n in sizes:
            train, valid, selection = _selection_split(pool.labels, order[:n], valid_fraction, seed)
            train, valid = pool.subset(train), pool.subset(valid)
            for arm in ARMS:
                build = partial(image_classifier, loaded, weights[arm], num_labels, seed,
                                s.dropout)  # fmt: skip
                row = tuned_arm(build, arm, seed, n, (train, valid, test), "accuracy", s, lrs)
                row |= {"selection": selection, "train_labels": len(train)}
                arms[arm][str(n)].append(row["accuracy"])
                runs.append(row)
    summary, saved = summarize(arms, sizes, target)
    return {
        "task": Path(data_path).name,
        "metric": "accuracy",
        "sizes": sizes,
        "seeds": list(seeds),
        "arms": arms,
        "summary": summary,
        "labels_saved": saved,
        "runs": runs,
        "heldout": {"split": "test", "n": len(test)},
        "settings": {
            **{k: v for k, v in asdict(s).items() if k not in UNUSED_SETTINGS},
            "valid_fraction": valid_fraction,
            "lrs": list(lrs),
            "pool": len(pool),
            "threads": torch.get_num_threads(),
        },
        "run": str(loaded.run_dir),
        "checkpoint": loaded.checkpoint.name,
        "step": loaded.state.get("step"),
        "objective": loaded.cfg.objective,
        "ledger": loaded.ledger(),
        "data": str(data_path),
    }


def write_result(result: dict, path: Path, plot: bool = True) -> Path | None:
    """Write the JSON to ``path`` and, with matplotlib, the curve beside it (its path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    if not plot:
        return None
    try:
        return plot_curve(result, path.with_suffix(".png"))
    except ImportError:
        log.warning("no plot: it needs matplotlib (pip install 'thrifty[report]')")
        return None


def _selection_split(labels: np.ndarray, sample: np.ndarray, fraction: float, seed: int):
    """(train, valid, how): a stratified held-out share of the N labels for early stopping and
    the lr, or, below two labels per class, the N labels themselves for both."""
    if len(sample) >= 2 * len(np.unique(labels)):
        return (*split_labels(labels, sample, fraction, seed), "held-out share")
    return np.sort(sample), np.sort(sample), "training labels"


def _image_set(path: str | Path, split: str) -> ImageSet:
    tensors = load_split(Path(path), split)
    return ImageSet(tensors["images"], tensors["labels"].numpy().astype(np.int64))


def default_settings(max_epochs: int = 20, patience: int = 5) -> Settings:
    """The trainer's settings for images: longer than text's (a random encoder learns from
    scratch), each epoch stretched to 10 steps so that N = 10 still trains."""
    return replace(Settings(), max_epochs=max_epochs, patience=patience, min_steps_per_epoch=10)
