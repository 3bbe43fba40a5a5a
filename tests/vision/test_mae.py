"""The patch stem and the masked autoencoder: shapes, FLOPs, the loss on hidden patches only,
masks keyed to the global row (a split batch gives the full batch's loss), and bad settings."""

from __future__ import annotations

import pytest
import torch

from thrifty.config import ModelConfig
from thrifty.data.images import prepare_images
from thrifty.data.source import open_source
from thrifty.errors import UserError
from thrifty.losses import combine
from thrifty.models.stem.patches import patchify
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch


def vit(**stem) -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, max_seq_len=64,
                      stem={"name": "patches", "patch_size": 2, "image_size": 8, "channels": 1,
                            **stem})  # fmt: skip
    return Transformer(cfg)


def test_patchify_is_raster_order():
    images = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = patchify(images, 2)
    assert patches.shape == (1, 4, 4)
    assert patches[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]  # the top-right patch


def test_stem_flops_and_keep_subset():
    model = vit()
    blocks = sum(b.flops_per_token(16) for b in model.blocks)
    assert model.flops_per_token(16) == pytest.approx(blocks + 6 * 4 * 32)
    images = torch.rand(3, 1, 8, 8)
    keep = torch.tensor([[0, 5, 9]] * 3)
    assert model(images, causal=False, keep=keep).shape == (3, 3, 32)


def test_bf16_autocast_trains_like_fp32():  # CUDA runs bf16 autocast by default
    objective = OBJECTIVES.build({"name": "mae", "decoder_width": 16}, vit(), seed=1)
    batch = Batch.of({"images": torch.rand(4, 1, 8, 8)})
    full = objective(batch).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = objective(batch).loss
    half.backward()
    assert torch.isfinite(half) and half.item() == pytest.approx(full.item(), rel=0.05)


def test_loss_is_on_hidden_patches_and_keyed_to_the_global_row():
    objective = OBJECTIVES.build({"name": "mae", "decoder_width": 16}, vit(), seed=1)
    images = torch.rand(4, 1, 8, 8)
    whole = objective(Batch.of({"images": images}, micro=2))
    halves = [
        objective(
            Batch.of(
                {"images": images[s]}, micro=2, rows=torch.arange(s.start, s.stop), global_rows=4
            )
        )  # fmt: skip
        for s in (slice(0, 2), slice(2, 4))
    ]
    total = sum(h.terms["mae"].total for h in halves)
    count = sum(h.terms["mae"].count for h in halves)
    assert torch.allclose(total / count, combine(whole.terms), atol=1e-6)
    assert whole.terms["mae"].count == 4 * 12  # 75% of the 16 patches of each image hidden


def test_mask_ratio_that_hides_nothing_or_everything_is_refused():
    with pytest.raises(UserError, match="objective.mask_ratio=0.99"):
        OBJECTIVES.build({"name": "mae", "mask_ratio": 0.99}, vit())


def test_pixel_normalisation_of_one_pixel_patches_is_refused():
    model = vit(patch_size=1)
    with pytest.raises(UserError, match="objective.norm_pix=true needs patches"):
        OBJECTIVES.build({"name": "mae"}, model)
    OBJECTIVES.build({"name": "mae", "norm_pix": False}, model)


def test_a_patch_size_that_does_not_tile_the_images_names_the_key(tmp_path):
    prepare_images("digits", tmp_path / "d")
    source = open_source(tmp_path / "d", "train")
    cfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, stem={"name": "patches", "patch_size": 3})
    with pytest.raises(UserError, match="model.stem.patch_size=3 does not tile"):
        source.fit(cfg)
    with pytest.raises(UserError, match="set model.stem=patches"):
        source.fit(ModelConfig(d_model=32, n_layers=1, n_heads=2))


def test_mae_learns_to_reconstruct_a_repeated_batch():
    model = vit()
    objective = OBJECTIVES.build({"name": "mae", "decoder_width": 16}, model, seed=0)
    opt = torch.optim.AdamW([*model.parameters(), *objective.owned.parameters()], lr=3e-3)
    images = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    losses = []
    for step in range(40):  # a new mask every step: the decoder must use what it sees
        out = objective(Batch.of({"images": images}, micro=step))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
