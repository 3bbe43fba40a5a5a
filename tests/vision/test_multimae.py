"""MultiMAE: the Dirichlet split sums to the visible-token budget on every row, losses on hidden
patches only, masks keyed to the global row, the decoder reads other modalities, the Sobel
pseudo-label, one-line errors; and a CLI run on procedural scenes (prepare, train, audit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thrifty.cli.main import main
from thrifty.config import ModelConfig
from thrifty.errors import UserError
from thrifty.losses import combine
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.multimae import dirichlet_shares, sobel_edges, split_budget
from thrifty.objectives.randomness import RowRandom

CONFIG = str(Path(__file__).parents[2] / "configs" / "multimae-scenes.yaml")


def vit(channels: int = 3) -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, max_seq_len=64,
                      stem={"name": "patches", "patch_size": 2, "image_size": 8,
                            "channels": channels})  # fmt: skip
    return Transformer(cfg)


def scene_batch(rows: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "images": torch.rand(rows, 3, 8, 8, generator=g),
        "depth": torch.rand(rows, 1, 8, 8, generator=g),
        "segmentation": torch.randint(0, 4, (rows, 8, 8), generator=g),
    }


def build(model=None, **cfg):
    section = {"name": "multimae", "decoder_width": 16, "visible_tokens": 12, **cfg}
    return OBJECTIVES.build(section, model or vit(), seed=1)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def test_the_dirichlet_split_sums_exactly_to_the_budget_on_every_row(alpha):
    shares = dirichlet_shares(RowRandom(0, "t", 0, range(500)), 3, alpha)
    assert torch.allclose(shares.sum(1), torch.ones(500, dtype=shares.dtype))
    for budget, capacity in ((12, 16), (40, 16), (47, 16), (1, 16)):
        counts = split_budget(shares, budget, capacity)
        assert (counts.sum(1) == budget).all()
        assert counts.min() >= 0 and counts.max() <= capacity
    objective = build(alpha=alpha)
    index = objective.choose(Batch.of(scene_batch(64), micro=3))
    assert index.shape == (64, 12) and (index.diff(1) > 0).all()  # 12 distinct tokens a row


def test_losses_are_on_hidden_patches_and_keyed_to_the_global_row():
    objective = build()
    fields = scene_batch()
    whole = objective(Batch.of(fields, micro=2))
    halves = [
        objective(
            Batch.of(
                {k: v[s] for k, v in fields.items()},
                micro=2,
                rows=torch.arange(s.start, s.stop),
                global_rows=4,
            )
        )
        for s in (slice(0, 2), slice(2, 4))
    ]
    for name in ("rgb", "depth", "segmentation"):
        total = sum(h.terms[name].total for h in halves)
        count = sum(h.terms[name].count for h in halves)
        assert torch.allclose(total / count, whole.terms[name].value, atol=1e-6)
    hidden = sum(whole.terms[n].count for n in whole.terms)
    assert hidden == 4 * (3 * 16 - 12)  # every token but the 12 visible of each row
    assert torch.allclose(combine(whole.terms), whole.loss)


def test_depth_is_predicted_from_rgb_alone():
    objective = build()
    fields = scene_batch(2)
    rgb_only = torch.arange(12).expand(2, 12)  # tokens 0..15 are rgb: no depth visible
    before = objective.predict(objective.maps(fields), rgb_only)["depth"]
    fields["images"] = fields["images"].flip(-1)
    after = objective.predict(objective.maps(fields), rgb_only)["depth"]
    assert not torch.allclose(before, after)


def test_edges_are_a_pseudo_label_of_any_image():
    flat = sobel_edges(torch.full((1, 1, 6, 6), 0.5))
    assert torch.equal(flat, torch.zeros_like(flat))
    step = torch.zeros(1, 3, 6, 6)
    step[..., 3:] = 1.0
    edges = sobel_edges(step)
    assert edges[0, 0, :, 2:4].min() > 0.5 and edges.max() <= 1 and edges[0, 0, :, 0].max() == 0
    objective = build(vit(channels=1), modalities=["rgb", "edges"], visible_tokens=8)
    out = objective(Batch.of({"images": torch.rand(3, 1, 8, 8)}))
    assert set(out.terms) == {"rgb", "edges"} and out.loss.isfinite()


def test_bad_settings_are_one_line_naming_the_key():
    with pytest.raises(UserError, match=r"objective.visible_tokens=48: must be below the 48"):
        build(visible_tokens=48)
    with pytest.raises(UserError, match="objective.modalities: 'normals' is not one of"):
        build(modalities=["rgb", "normals"])
    with pytest.raises(UserError, match="objective.modalities names 'depth'"):
        build()(Batch.of({"images": torch.rand(2, 3, 8, 8)}))
    with pytest.raises(UserError, match="objective.segmentation_classes=3"):
        build(segmentation_classes=3)(Batch.of(scene_batch()))


def test_multimae_on_scenes_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "scenes"
    assert main(["prepare", "images:scenes", "--out", str(data), "--count", "80",
                 "--image-size", "16", "--quiet"]) == 0  # fmt: skip
    run = ["train", CONFIG, f"data.path={data}", f"runs_dir={tmp_path / 'runs'}", "name=cli",
           "train.threads=1", "train.max_steps=4", "train.batch_size=8", "train.eval_every=2",
           "train.eval_batches=1", "train.checkpoint_every=4", "model.n_layers=1",
           "model.d_model=32", "model.n_heads=2", "objective.visible_tokens=12",
           "objective.decoder_width=16", "train.peak_flops=1e11"]  # fmt: skip
    assert main(run) == 0
    capsys.readouterr()
    assert main(["audit", str(tmp_path / "runs" / "cli")]) == 0
    assert "images" in capsys.readouterr().out


def test_multimae_learns_a_repeated_batch():
    model = vit()
    objective = build(model)
    opt = torch.optim.AdamW([*model.parameters(), *objective.owned.parameters()], lr=3e-3)
    fields, losses = scene_batch(8), []
    for step in range(30):  # a new split and mask every step
        out = objective(Batch.of(fields, micro=step))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5
