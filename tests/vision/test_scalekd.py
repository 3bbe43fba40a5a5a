"""ScaleKD and its parts: the conv stem (a CNN with no blocks), the cross-attention projector's
output on the teacher's grid for any student resolution, plain CE when every KD weight is 0,
logit KD of 0 at equal logits, a frozen teacher, the teacher's images charged to the ledger,
FLOPs, and teachers that cannot teach."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from thrifty.config import ModelConfig, RunConfig, dump_config, load_config
from thrifty.data.images import prepare_images
from thrifty.data.source import open_source
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.projector import CrossAttentionProjector, frequency_mse, softened_kl
from thrifty.train.loop import train

OFF = {"kd_weight": 0, "feature_weight": 0, "perception_weight": 0}


def cnn(downsample: int = 1, image_size: int = 8, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    stem = {"name": "conv", "depth": 3, "width": 8, "downsample": downsample,
            "image_size": image_size, "channels": 1}  # fmt: skip
    return Transformer(ModelConfig(d_model=16, n_layers=0, n_heads=2, max_seq_len=64, stem=stem))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A classify ViT (16 tokens of width 32) trained 4 steps on the real digits."""
    root = tmp_path_factory.mktemp("scalekd")
    prepare_images("digits", root / "digits")
    cfg = load_config(None, [
        "name=teacher", f"runs_dir={root / 'runs'}", f"data.path={root / 'digits'}",
        "model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.max_seq_len=64",
        "model.stem={name: patches, patch_size: 2}", "objective.name=classify",
        "train.max_steps=4", "train.batch_size=16", "train.threads=1", "train.eval_every=0",
        "train.checkpoint_every=0", "eval.blimp_data=null",
    ])  # fmt: skip
    train(cfg)
    return cfg.run_dir


def images_batch(n: int = 4, micro: int = 0) -> Batch:
    g = torch.Generator().manual_seed(micro)
    fields = {"images": torch.rand(n, 1, 8, 8, generator=g), "labels": torch.arange(n) % 10}
    return Batch.of(fields, micro=micro)


def student(teacher, seed: int = 0, **section):
    model = cnn(seed=seed)
    objective = OBJECTIVES.build({"name": "scalekd", "teacher": str(teacher), **section}, model)
    objective.setup(seq_len=16, device=torch.device("cpu"))
    return model, objective


def test_conv_stem_is_a_cnn_without_blocks_and_fits_the_digits(tmp_path):
    model = cnn()
    assert len(model.blocks) == 0
    assert model(torch.rand(2, 1, 8, 8), causal=False).shape == (2, 16, 16)
    stem = model.embed
    macs = 4 * 4 * (8 * 1 + 8 * 8 + 16 * 8) * 9  # one stride-2 layer first: every map is 4x4
    assert model.flops_per_token(16) == pytest.approx(6 * macs / 16)
    assert stem.num_tokens == 16 and cnn(downsample=0).embed.num_tokens == 64
    prepare_images("digits", tmp_path / "d")
    source = open_source(tmp_path / "d", "train")
    fitted = source.fit(ModelConfig(d_model=16, n_layers=0, n_heads=2, stem={"name": "conv"}))
    assert fitted.stem["image_size"] == 8 and source.item_tokens(fitted) == 16
    with pytest.raises(UserError, match="model.stem.downsample=4"):
        source.fit(ModelConfig(d_model=16, n_layers=0, n_heads=2,
                               stem={"name": "conv", "depth": 4, "downsample": 4}))  # fmt: skip


@pytest.mark.parametrize("student_tokens", [4, 16, 64, 49])
@pytest.mark.parametrize("teacher_tokens", [4, 16])
def test_projector_output_is_the_teacher_grid_for_any_student_resolution(
    student_tokens, teacher_tokens
):
    projector = CrossAttentionProjector(16, student_tokens, 32, teacher_tokens, heads=2)
    out = projector(torch.rand(3, student_tokens, 16))
    assert out.shape == (3, teacher_tokens, 32)


def test_the_objective_projects_every_student_grid_onto_the_teachers(teacher):
    for downsample in (0, 1, 2):  # 8x8, 4x4 and 2x2 feature maps
        model = cnn(downsample)
        objective = OBJECTIVES.build({"name": "scalekd", "teacher": str(teacher)}, model)
        tokens = model(torch.rand(2, 1, 8, 8), causal=False)
        assert objective.owned["projector"](tokens).shape == (2, 16, 32)


def test_with_every_kd_weight_zero_the_loss_is_plain_cross_entropy():
    batch = images_batch()
    plain = OBJECTIVES.build({"name": "classify"}, cnn())(batch)
    kd = OBJECTIVES.build({"name": "scalekd", **OFF}, cnn())  # needs no teacher
    out = kd(batch)
    assert set(out.terms) == {"ce"} and torch.equal(out.loss, plain.loss)
    assert kd.setup(seq_len=16, device=torch.device("cpu")) == {} and kd.exposure(5, 4) == []


def test_logit_kd_is_zero_at_equal_logits_and_dc_free_view_ignores_a_shift():
    logits = torch.randn(5, 10)
    assert torch.allclose(softened_kl(logits, logits.clone(), 4.0), torch.zeros(5), atol=1e-6)
    assert (softened_kl(logits, torch.randn(5, 10), 4.0) > 0).all()
    x = torch.randn(2, 16, 8)
    assert torch.allclose(frequency_mse(x + torch.randn(2, 1, 8), x), torch.zeros(2), atol=1e-6)


def test_logit_kd_term_vanishes_when_the_student_copies_the_teacher(teacher):
    model, objective = student(teacher, feature_weight=0, perception_weight=0)
    batch = images_batch()
    with torch.no_grad():  # make the student's logits the teacher's: same features, same head
        t = objective.teacher(batch.inputs["images"], causal=False).mean(1)
    objective.model = lambda images, **_: t[:, None].expand(-1, 16, -1)
    objective.owned["head"] = objective.teacher_head
    assert objective(batch).metrics["kd"] == pytest.approx(0.0, abs=1e-5)  # T² = 16 x fp32


def test_the_teacher_stays_frozen_through_a_step(teacher):
    model, objective = student(teacher)
    before = {k: v.clone() for k, v in objective.teacher.state_dict().items()}
    head_before = objective.teacher_head.weight.clone()
    params = [*model.parameters(), *objective.owned.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    out = objective(images_batch())
    assert set(out.terms) == {"ce", "feature", "perception", "kd"}
    out.loss.backward()
    optimizer.step()
    teacher_params = [*objective.teacher.parameters(), *objective.teacher_head.parameters()]
    assert all(p.grad is None and not p.requires_grad for p in teacher_params)
    after = objective.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(head_before, objective.teacher_head.weight)
    assert objective.owned["projector"].queries.grad is not None  # the projector does learn


def test_the_teachers_images_are_charged_and_its_passes_carried(teacher):
    ledger = json.loads((teacher / "ledger.json").read_text())
    model = cnn()
    objective = OBJECTIVES.build({"name": "scalekd", "teacher": str(teacher)}, model)
    charges = objective.setup(seq_len=16, device=torch.device("cpu"))
    (name, images), = charges.items()  # fmt: skip
    assert name.startswith("scalekd teacher ") and images == 1259 + 179  # its train + valid
    (entry,) = objective.exposure(10, 4)
    assert entry["words"] == ledger["prepared_words"]["train"]
    assert entry["passes"] == pytest.approx(ledger["words_seen"] / 1259)
    assert entry["sources"]  # the digits' sha256: the epoch rule adds the student's passes


def test_flops_count_the_teacher_forward_and_the_projector(teacher):
    plain = OBJECTIVES.build({"name": "scalekd", **OFF}, cnn())
    full = OBJECTIVES.build({"name": "scalekd", "teacher": str(teacher)}, cnn())
    spec, projector = full.spec, full.owned["projector"]
    head = 32 * 10
    extra = spec.forward_flops + 2 * head + projector.flops_per_image() + 4 * head
    assert full.extra_flops_per_token(16) == pytest.approx(
        plain.extra_flops_per_token(16) + extra / 16
    )
    assert spec.forward_flops > 0 and projector.flops_per_image() > 0


def test_teachers_that_cannot_teach_name_the_key(teacher, tmp_path):
    with pytest.raises(UserError, match="objective.teacher: set it"):
        OBJECTIVES.build({"name": "scalekd"}, cnn())
    with pytest.raises(UserError, match="objective.teacher=.*: no such run"):
        OBJECTIVES.build({"name": "scalekd", "teacher": str(tmp_path / "nowhere")}, cnn())
    with pytest.raises(UserError, match="objective.teacher=.*side 8; this run's have .* side 16"):
        OBJECTIVES.build({"name": "scalekd", "teacher": str(teacher)}, cnn(image_size=16))
    with pytest.raises(UserError, match="objective.teacher=.*has a head of 10 classes"):
        OBJECTIVES.build({"name": "scalekd", "teacher": str(teacher), "classes": 12}, cnn())
    text = tmp_path / "text" / "checkpoints" / "step_00000001"  # a language model's checkpoint
    text.mkdir(parents=True)
    cfg = RunConfig(name="text", model=ModelConfig(size="nano", vocab_size=256))
    (text / "config.yaml").write_text(dump_config(cfg))
    (text / "state.json").write_text(json.dumps({"model_kind": "causal"}))
    with pytest.raises(UserError, match="objective.teacher=.* causal model with stem 'tokens'"):
        OBJECTIVES.build({"name": "scalekd", "teacher": str(text)}, cnn())
    mae = tmp_path / "mae" / "checkpoints" / "step_00000001"  # an image encoder without a head
    mae.mkdir(parents=True)
    saved = load_config(teacher / "config.yaml")
    (mae / "config.yaml").write_text(dump_config(replace(saved, objective={"name": "mae"})))
    (mae / "state.json").write_text(json.dumps({"model_kind": "encoder"}))
    with pytest.raises(UserError, match="has no classification head"):
        OBJECTIVES.build({"name": "scalekd", "teacher": str(mae)}, cnn())
    features_only = {"name": "scalekd", "teacher": str(mae), "kd_weight": 0,
                     "perception_weight": 0}  # fmt: skip
    assert "projector" in OBJECTIVES.build(features_only, cnn()).owned


def test_labels_past_the_classes_and_all_weights_zero_are_refused():
    with pytest.raises(UserError, match="every loss weight is 0"):
        OBJECTIVES.build({"name": "scalekd", **OFF, "ce_weight": 0}, cnn())
    objective = OBJECTIVES.build({"name": "classify", "classes": 3}, cnn())
    with pytest.raises(UserError, match="objective.classes=3 is below"):
        objective(images_batch())


def test_classify_learns_a_repeated_batch():
    model = cnn()
    objective = OBJECTIVES.build({"name": "classify"}, model)
    opt = torch.optim.AdamW([*model.parameters(), *objective.owned.parameters()], lr=1e-2)
    batch, losses = images_batch(8), []
    for _ in range(40):
        out = objective(batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    assert out.sample_losses.shape == (8,) and losses[-1] < 0.5 * losses[0]


def test_a_split_batch_gives_the_whole_batchs_terms(teacher):
    _, objective = student(teacher)
    images = torch.rand(4, 1, 8, 8)
    fields = {"images": images, "labels": torch.arange(4)}
    whole = objective(Batch.of(fields))
    halves = [
        objective(
            Batch.of(
                {k: v[s] for k, v in fields.items()},
                rows=torch.arange(s.start, s.stop),
                global_rows=4,
            )
        )  # fmt: skip
        for s in (slice(0, 2), slice(2, 4))
    ]
    for name, term in whole.terms.items():
        total = sum(h.terms[name].total for h in halves) / sum(h.terms[name].count for h in halves)
        assert torch.allclose(total, term.value, atol=1e-5)
