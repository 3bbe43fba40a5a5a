"""Frozen-feature evaluation of an image encoder: linear probe, k-NN, few-label curves.

Features are the encoder's final hidden states averaged over the patches (``mean_features``),
computed once per split with the encoder frozen. The classifiers come from scikit-learn (a
maintained implementation; only the protocol is thrifty's):

- **linear probe**: logistic regression on standardised features, its inverse regularisation
  ``C`` chosen on the ``valid`` split from a fixed grid, accuracy reported on ``test``;
- **k-NN**: cosine-similarity nearest neighbours, ``k`` chosen on ``valid``, reported on
  ``test``;
- **few labels**: the linear probe trained on N training labels (a seeded, class-stratified,
  nested sample, ``stratified_order``) at a fixed ``C = 1`` (nothing is tuned on labels beyond
  the N), for the pretrained encoder and for a randomly initialised encoder of the same
  architecture and seed (``initial_model``), with the labels each needs to reach the random
  encoder's best mean and their ratio (``thrifty.eval.label_efficiency.summarize``).
"""

from __future__ import annotations

import numpy as np
import torch

from thrifty.data.images import load_split
from thrifty.errors import UserError
from thrifty.eval.finetune.subsample import stratified_order
from thrifty.eval.label_efficiency import summarize
from thrifty.models.stem.conv import ConvStem
from thrifty.models.stem.patches import PatchStem, mean_features

C_GRID = (0.01, 0.1, 1.0, 10.0)
K_GRID = (1, 5, 20)


@torch.no_grad()
def split_features(model, data_path, split: str, batch_size: int = 256):
    """(features (N, C) float64, labels (N,)) of one split of a prepared image set."""
    if not isinstance(model.embed, PatchStem | ConvStem):
        raise UserError("probes read image encoders: this run's model has no patches or conv stem")
    tensors = load_split(data_path, split)
    device = next(model.parameters()).device
    model.eval()
    parts = []
    for s in range(0, len(tensors["labels"]), batch_size):
        images = tensors["images"][s : s + batch_size].float().to(device) / 255.0
        parts.append(mean_features(model, images).float().cpu())
    return torch.cat(parts).double().numpy(), tensors["labels"].numpy()


def _logistic(train_x, train_y, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(
        train_x, train_y
    )


def linear_probe(features: dict) -> dict:
    """Test accuracy of the logistic probe whose C is best on valid."""
    (tx, ty), (vx, vy), (sx, sy) = features["train"], features["valid"], features["test"]
    probes = {c: _logistic(tx, ty, c) for c in C_GRID}
    scores = {c: probe.score(vx, vy) for c, probe in probes.items()}
    best = max(C_GRID, key=lambda c: scores[c])
    return {"C": best, "valid": scores[best], "test": float(probes[best].score(sx, sy))}


def knn_probe(features: dict) -> dict:
    """Test accuracy of cosine k-NN whose k is best on valid."""
    from sklearn.neighbors import KNeighborsClassifier

    (tx, ty), (vx, vy), (sx, sy) = features["train"], features["valid"], features["test"]

    probes = {
        k: KNeighborsClassifier(n_neighbors=min(k, len(ty)), metric="cosine").fit(tx, ty)
        for k in K_GRID
    }
    scores = {k: probe.score(vx, vy) for k, probe in probes.items()}
    best = max(K_GRID, key=lambda k: scores[k])
    return {"k": best, "valid": scores[best], "test": float(probes[best].score(sx, sy))}


def few_label_accuracy(
    features: dict, sizes: list[int], seeds: list[int]
) -> dict[str, list[float]]:
    """Test accuracy of the C=1 probe on N training labels, per N, one value per seed."""
    (tx, ty), (sx, sy) = features["train"], features["test"]
    out: dict[str, list[float]] = {str(n): [] for n in sizes}
    for seed in seeds:
        order = stratified_order(ty, seed)
        for n in sizes:
            pick = order[: min(n, len(ty))]
            if len(np.unique(ty[pick])) < 2:  # a classifier needs two classes to fit
                out[str(n)].append(float(np.mean(sy == ty[pick][0])))
                continue
            out[str(n)].append(float(_logistic(tx[pick], ty[pick], 1.0).score(sx, sy)))
    return out


def probe_encoders(encoders: dict, data_path, sizes: list[int], seeds: list[int]) -> dict:
    """Every probe for each named encoder (``pretrained``, ``random_init``), and the labels
    saved by pretraining on the few-label curve."""
    result: dict = {"sizes": sizes, "seeds": seeds, "arms": {}}
    curves = {}
    for arm, model in encoders.items():
        features = {s: split_features(model, data_path, s) for s in ("train", "valid", "test")}
        curves[arm] = few_label_accuracy(features, sizes, seeds)
        result["arms"][arm] = {"linear": linear_probe(features), "knn": knn_probe(features)}
    if {"pretrained", "random_init"} <= curves.keys():
        summary, saved = summarize(curves, sizes, None)
        result["few_labels"], result["labels_saved"] = summary, saved
    return result
