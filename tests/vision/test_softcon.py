"""Digit mosaics and soft contrastive learning: honest splits, multi-hot targets, Jaccard soft
targets that reduce to SimCLR's InfoNCE on disjoint one-hot labels, views keyed to the global
row, the multi-label probe's mAP, and bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from thrifty.config import ModelConfig
from thrifty.data.images import load_split, prepare_images
from thrifty.data.mosaics import mosaic_source
from thrifty.data.source import open_source
from thrifty.errors import UserError
from thrifty.eval.multilabel_probe import mean_ap, split_targets
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.softcon import augment, contrastive_loss, jaccard, soft_targets


def vit() -> Transformer:
    torch.manual_seed(0)
    stem = {"name": "patches", "patch_size": 4, "image_size": 16, "channels": 1}
    cfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, max_seq_len=64, stem=stem)
    return Transformer(cfg)


@pytest.fixture(scope="module")
def mosaics():
    return mosaic_source(0.1, 0.2, seed=0)


def test_test_mosaics_use_only_digits_unseen_in_train_and_valid(mosaics):
    from thrifty.data.images import load_digits_source

    digits = load_digits_source()[0]
    index = {d.tobytes(): i for i, d in enumerate(digits)}  # a few digits are pixel-identical

    def used(split):
        cells = mosaics.images[mosaics.splits[split]]
        tiles = [cells[:, :, r : r + 8, c : c + 8] for r in (0, 8) for c in (0, 8)]
        return {index[t.tobytes()] for block in tiles for t in block}

    train, valid, test = used("train"), used("valid"), used("test")
    assert not test & (train | valid) and not train & valid
    duplicates = len(digits) - len(index)
    assert len(train | valid | test) >= len(digits) * 0.9 - duplicates


def test_targets_are_multi_hot_sets_of_two_to_four_classes_and_labels_the_first(mosaics):
    sizes = mosaics.targets.sum(1)
    assert mosaics.targets.shape == (len(mosaics.images), 10)
    assert mosaics.images.shape[1:] == (1, 16, 16)
    assert sizes.min() == 2 and sizes.max() == 4
    assert np.all(mosaics.targets[np.arange(len(sizes)), mosaics.labels] == 1)


def test_prepared_mosaics_carry_targets_into_the_source_and_the_ledger(tmp_path):
    manifest = prepare_images("mosaic", tmp_path / "m", budget_images=279)
    assert (
        manifest["ledger"]["unit"] == "images" and manifest["counts"]["train"] == 100
    )  # 279 - 179 valid
    assert len(manifest["ledger"]["sources"][0]["sha256"]) == 64
    assert load_split(tmp_path / "m", "test")["targets"].dtype == torch.uint8
    batch = open_source(tmp_path / "m", "train").batch([3, 1], 16)
    assert batch["targets"].shape == (2, 10) and batch["images"].shape == (2, 1, 16, 16)
    prepare_images("digits", tmp_path / "d")
    assert "targets" not in open_source(tmp_path / "d", "train").batch([0], 16)
    with pytest.raises(UserError, match="--multilabel needs multi-hot targets"):
        split_targets(tmp_path / "d", "test")


def test_jaccard_of_label_sets():
    t = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]])
    s = jaccard(t)
    assert s[0, 1] == pytest.approx(1 / 3) and s[0, 2] == 1 and s[0, 3] == 0
    assert torch.equal(s, s.T)


def test_disjoint_one_hot_labels_reduce_softcon_to_simclr_infonce():
    torch.manual_seed(0)
    B, tau = 6, 0.3
    z = F.normalize(torch.randn(2 * B, 8), dim=-1)
    one_hot = torch.eye(10, dtype=torch.uint8)[torch.randperm(10)[:B]]
    soft = contrastive_loss(z, tau, soft_targets(one_hot, 1.0))
    # SimCLR's NT-Xent written independently: view i's positive is i ± B, the rest negatives
    sim = (z @ z.T / tau).fill_diagonal_(float("-inf"))
    positive = torch.cat([torch.arange(B, 2 * B), torch.arange(B)])
    nt_xent = F.cross_entropy(sim, positive, reduction="none").view(2, B).mean(0)
    assert torch.allclose(soft, nt_xent, atol=1e-6)
    assert torch.allclose(contrastive_loss(z, tau, None), nt_xent, atol=1e-6)
    shared = one_hot.clone()
    shared[1] = shared[0]  # two images with the same label: no longer SimCLR
    assert not torch.allclose(contrastive_loss(z, tau, soft_targets(shared, 1.0)), nt_xent)


def test_soft_targets_are_distributions_with_the_partner_and_label_mix():
    t = torch.tensor([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    p = soft_targets(t, 1.0)
    assert torch.allclose(p.sum(1), torch.ones(6)) and torch.all(p.diagonal() == 0)
    assert p[0, 3] == p[0].max() and p[0, 2] == 0 and p[0, 1] > 0  # partner, disjoint, overlap
    half = soft_targets(t, 0.5)
    assert torch.allclose(half, 0.5 * p + 0.5 * torch.eye(6).roll(3, 1))


def test_views_are_keyed_to_the_global_row_and_stay_in_range():
    objective = OBJECTIVES.build({"name": "softcon"}, vit(), seed=1)
    images = torch.rand(4, 1, 16, 16)
    whole = augment(
        images, objective.random(Batch.of({"images": images}, micro=3), "views"), 2, 0.1, 0.3
    )
    part = Batch.of({"images": images[2:]}, micro=3, rows=torch.arange(2, 4), global_rows=4)
    half = augment(images[2:], objective.random(part, "views"), 2, 0.1, 0.3)
    assert torch.equal(half, whole[[2, 3, 6, 7]])
    assert whole.min() >= 0 and whole.max() <= 1 and not torch.equal(whole[:4], whole[4:])


def test_softcon_loss_terms_gradients_and_split_rows():
    objective = OBJECTIVES.build({"name": "softcon", "proj_dim": 8}, vit(), seed=0)
    targets = torch.tensor(
        [[1, 1, 0, 0, 0, 0, 0, 0, 0, 0]] * 2 + [[0, 0, 1, 1, 0, 0, 0, 0, 0, 0]] * 2
    )
    fields = {"images": torch.rand(4, 1, 16, 16), "targets": targets}
    out = objective(Batch.of(fields, micro=0))
    term = out.terms["contrastive"]
    assert term.count == 4 and out.sample_losses.shape == (4,)
    out.loss.backward()
    assert all(p.grad is not None for p in objective.owned.parameters())
    # the same rows as a split micro-batch: the same views, so the same per-row loss when the
    # split holds every row a row contrasts with (negatives are the micro-batch's own rows)
    again = objective(Batch.of(fields, micro=0, rows=torch.arange(4), global_rows=4))
    assert torch.allclose(again.sample_losses, out.sample_losses)
    simclr = OBJECTIVES.build({"name": "simclr", "proj_dim": 8}, vit(), seed=0)
    assert simclr.kind == "encoder" and simclr(Batch.of({"images": fields["images"]})).loss > 0


def test_bad_settings_name_the_key():
    with pytest.raises(UserError, match="objective.temperature=0"):
        OBJECTIVES.build({"name": "softcon", "temperature": 0.0}, vit())
    with pytest.raises(UserError, match="objective.label_weight=1.5"):
        OBJECTIVES.build({"name": "softcon", "label_weight": 1.5}, vit())
    objective = OBJECTIVES.build({"name": "softcon"}, vit())
    with pytest.raises(UserError, match="objective.label_weight=1.0 needs multi-hot targets"):
        objective(Batch.of({"images": torch.rand(2, 1, 16, 16)}))


def test_mean_ap_is_one_for_perfect_scores_and_prevalence_for_constant_ones():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    assert mean_ap(y, y.astype(float)) == 1.0
    assert mean_ap(y, np.full(y.shape, 0.5)) == pytest.approx(0.5)
