"""Multi-label linear probe of a frozen image encoder: macro mean average precision (mAP), the
measure of multi-label scene benchmarks (BigEarthNet in SoftCon, Wang et al. 2024).

Features are ``thrifty.eval.image_probe.split_features`` (mean-pooled final hidden states);
the targets are the prepared set's multi-hot ``targets`` (``images:mosaic``). The probe is one
logistic regression per class on standardised features (scikit-learn's ``OneVsRestClassifier``),
its inverse regularisation ``C`` chosen on ``valid`` from the single-label probe's grid, mAP
(``sklearn.metrics.average_precision_score``, macro over classes with a positive) reported on
``test``. ``chance`` is the mAP of scores that ignore the image: each class's test prevalence.
"""

from __future__ import annotations

import numpy as np

from thrifty.data.images import load_split
from thrifty.errors import UserError
from thrifty.eval.image_probe import C_GRID, split_features


def split_targets(data_path, split: str) -> np.ndarray:
    """(N, classes) multi-hot targets of one split; a UserError for a single-label set."""
    tensors = load_split(data_path, split)
    if "targets" not in tensors:
        raise UserError(
            f"{data_path}: --multilabel needs multi-hot targets (prepare images:mosaic)"
        )
    return tensors["targets"].numpy().astype(np.int64)


def mean_ap(targets: np.ndarray, scores: np.ndarray) -> float:
    """Macro average precision over the classes with at least one positive."""
    from sklearn.metrics import average_precision_score

    present = targets.sum(0) > 0
    return float(average_precision_score(targets[:, present], scores[:, present], average="macro"))


def _fit(x, y, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000))
    return make_pipeline(StandardScaler(), probe).fit(x, y)


def multilabel_probe(features: dict) -> dict:
    """Test mAP of the one-vs-rest probe whose C is best on valid."""
    (tx, ty), (vx, vy), (sx, sy) = features["train"], features["valid"], features["test"]
    probes = {c: _fit(tx, ty, c) for c in C_GRID}
    scores = {c: mean_ap(vy, probe.decision_function(vx)) for c, probe in probes.items()}
    best = max(C_GRID, key=lambda c: scores[c])
    test = mean_ap(sy, probes[best].decision_function(sx))
    return {"C": best, "valid": scores[best], "test": test}


def probe_multilabel(encoders: dict, data_path) -> dict:
    """The multi-label probe for each named encoder (``pretrained``, ``random_init``)."""
    targets = {s: split_targets(data_path, s) for s in ("train", "valid", "test")}
    test = targets["test"]
    chance = mean_ap(test, np.broadcast_to(test.mean(0), test.shape))
    result: dict = {"metric": "mAP (macro)", "chance": chance, "arms": {}}
    for arm, model in encoders.items():
        features = {s: (split_features(model, data_path, s)[0], targets[s]) for s in targets}
        result["arms"][arm] = multilabel_probe(features)
    return result
