"""CLIP on digit captions: the pairs set (splits as images:digits, seeded templates, a word-level
tokenizer on the training captions, the ledger in pairs), the card's invariants (loss at init
near log N, symmetric in the two roles, the temperature cap), FLOPs that count the text tower,
zero-shot and retrieval scoring, and bad input."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from thrifty.config import ModelConfig
from thrifty.data.images import load_split, prepare_images
from thrifty.data.pairs import TEMPLATES, prepare_pairs
from thrifty.data.source import open_source
from thrifty.data.tokenizer import EOS_ID, load_tokenizer
from thrifty.errors import UserError
from thrifty.eval.zero_shot import chance_recall, recall, retrieval_hits, zero_shot
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.clip import clip_loss

STEM = {"name": "patches", "patch_size": 2}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "pairs"
    return path, prepare_pairs("digits", path, seed=3)


def fitted_clip(path, objective: dict | None = None, seed: int = 0):
    source = open_source(path, "train")
    cfg = source.fit(ModelConfig(d_model=32, n_layers=1, n_heads=2, max_seq_len=16, stem=STEM))
    torch.manual_seed(seed)
    model = Transformer(cfg)
    section = {"name": "clip", "text_width": 32, "text_layers": 1, **(objective or {})}
    return source, OBJECTIVES.build(section, model, seed=seed)


def test_pairs_split_as_the_image_set_with_seeded_captions_and_a_ledger_in_pairs(pairs, tmp_path):
    path, manifest = pairs
    prepare_images("digits", tmp_path / "img", seed=3)
    for split in ("train", "valid", "test"):  # the same images in the same order
        images = load_split(tmp_path / "img", split)["images"]
        assert torch.equal(load_split(path, split)["images"], images)
    assert manifest["modality"] == "pairs" and manifest["templates"] == list(TEMPLATES)
    ledger = manifest["ledger"]
    assert (
        ledger["unit"] == "pairs"
        and ledger["prepared_words"]["train"] == manifest["counts"]["train"]
    )
    assert (
        ledger["tokenizer"]["trained_on_words"] > 3 * manifest["counts"]["train"]
    )  # caption words, on record
    assert ledger["tokenizer"]["text_sha256"] in ledger["texts"]  # charged with the pairs
    again = prepare_pairs("digits", tmp_path / "again", seed=3)
    assert again["ledger"]["tokenizer"]["sha256"] == ledger["tokenizer"]["sha256"]
    used = load_split(path, "train")["templates"]
    assert torch.equal(used, load_split(tmp_path / "again", "train")["templates"])
    assert len(set(used.tolist())) == len(TEMPLATES)
    prepare_pairs("digits", tmp_path / "s4", seed=4)
    assert not torch.equal(load_split(tmp_path / "s4", "train")["templates"][:50], used[:50])


def test_captions_decode_to_their_label_and_the_batch_pads_them(pairs):
    path, manifest = pairs
    tok = load_tokenizer(path)
    tensors = load_split(path, "valid")
    for i in range(5):
        n = int(tensors["caption_lengths"][i])
        ids = tensors["captions"][i]
        assert ids[n - 1] == EOS_ID and torch.all(ids[n:] == 0)
        text = tok.decode(ids[: n - 1].tolist())
        label = int(tensors["labels"][i])
        template = TEMPLATES[int(tensors["templates"][i])]
        assert text == template.format(name=manifest["classes"][label], digit=label)
    batch = open_source(path, "valid").batch([0, 1, 2], 16)
    assert batch["captions"].shape == (3, manifest["caption_len"])
    assert torch.equal(batch["caption_padding"].sum(1), tensors["caption_lengths"][:3])
    assert batch["images"].shape == (3, 1, 8, 8) and batch["labels"].shape == (3,)


def test_loss_at_init_is_near_log_n(pairs):
    source, objective = fitted_clip(pairs[0])
    for n in (16, 64):
        out = objective(Batch.of(source.batch(range(n), 16)))
        assert abs(out.loss.item() - math.log(n)) < 0.1 * math.log(n)
        assert out.terms["clip"].count == n and out.sample_losses.shape == (n,)


def test_loss_is_symmetric_in_the_image_and_text_roles():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    scale = torch.tensor(10.0)
    assert torch.allclose(clip_loss(a, b, scale), clip_loss(b, a, scale), atol=1e-6)
    # and it is the mean of the two directions' cross-entropies, which differ on their own
    logits = scale * a @ b.T
    rows = torch.nn.functional.cross_entropy(logits, torch.arange(8))
    cols = torch.nn.functional.cross_entropy(logits.T, torch.arange(8))
    assert not torch.isclose(rows, cols)
    assert torch.isclose(clip_loss(a, b, scale).mean(), (rows + cols) / 2, atol=1e-6)


def test_temperature_is_clipped_at_the_cap_and_learns_below_it(pairs):
    source, objective = fitted_clip(pairs[0])
    heads = objective.owned
    assert heads.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    batch = Batch.of(source.batch(range(8), 16))
    objective(batch).loss.backward()
    assert heads.logit_scale.grad is not None and heads.logit_scale.grad != 0
    with torch.no_grad():
        heads.logit_scale.fill_(math.log(1e4))
    heads.zero_grad()
    out = objective(batch)
    assert out.metrics["logit_scale"] == pytest.approx(100.0, rel=1e-5)
    out.loss.backward()
    assert heads.logit_scale.grad == 0  # past the cap: nothing pushes it further
    image, text = objective.embeddings(batch)
    assert (heads.scale() * image @ text.T).abs().max() <= 100.0 + 1e-4


def test_gradients_reach_both_towers_and_flops_count_the_text_tower(pairs):
    source, objective = fitted_clip(pairs[0])
    objective(Batch.of(source.batch(range(8), 16))).loss.backward()
    assert all(p.grad is not None for p in objective.model.parameters())
    assert all(p.grad is not None for p in objective.owned.parameters())
    patches = objective.num_patches
    image_only = objective.model.flops_per_token(patches, 0.0)
    text = objective.owned.text.flops_per_token(16, 0.0) * 16 / patches
    assert objective.flops_per_token(patches) > image_only + text
    wider = fitted_clip(pairs[0], {"text_layers": 2})[1]
    assert wider.flops_per_token(patches) > objective.flops_per_token(patches)
    assert objective.kind == "encoder"


def test_recall_and_retrieval_hits_treat_repeated_captions_as_one_text():
    captions = torch.tensor([[5, 2], [6, 2], [5, 2]])
    first, own = retrieval_hits(captions)
    assert first.tolist() == [0, 1] and own.tolist() == [
        [True, False],
        [False, True],
        [True, False],
    ]
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])  # image 2 ranks text 1 first
    assert recall(scores, own, ks=(1, 2)) == {"R@1": pytest.approx(1 / 3), "R@2": 1.0}
    assert chance_recall(own, ks=(1, 2)) == {"R@1": pytest.approx(0.5), "R@2": 1.0}


def test_zero_shot_scores_untrained_towers_near_chance(pairs, tmp_path):
    path, _ = pairs
    _, objective = fitted_clip(path)
    result = zero_shot(objective.model, objective.owned, path)
    assert result["distinct_captions"] == 10 * len(TEMPLATES) and result["pairs"] == 359
    assert 0.0 <= result["zero_shot"]["accuracy"] < 0.3
    assert result["image_to_text"]["chance"]["R@1"] == pytest.approx(1 / 40)
    prepare_images("digits", tmp_path / "img")
    with pytest.raises(UserError, match="zero-shot needs a prepared pairs set"):
        zero_shot(objective.model, objective.owned, tmp_path / "img")


def test_bad_input_is_one_error_naming_the_key(pairs, tmp_path):
    path, _ = pairs
    source = open_source(path, "train")
    tokens = ModelConfig(d_model=32, n_layers=1, n_heads=2, max_seq_len=16)
    with pytest.raises(UserError, match="set model.stem=patches"):
        source.fit(tokens)
    fitted = source.fit(ModelConfig(d_model=32, n_layers=1, n_heads=2, max_seq_len=16, stem=STEM))
    with pytest.raises(UserError, match="model.vocab_size=7 does not match"):
        source.fit(ModelConfig(d_model=32, n_layers=1, n_heads=2, vocab_size=7, stem=STEM))
    with pytest.raises(UserError, match="objective.max_logit_scale=1"):
        OBJECTIVES.build({"name": "clip", "max_logit_scale": 1.0}, Transformer(fitted))
    with pytest.raises(UserError, match="objective.init_temperature=0.001 starts past"):
        OBJECTIVES.build({"name": "clip", "init_temperature": 0.001}, Transformer(fitted))
    with pytest.raises(UserError, match="objective.text_width=30 must split"):
        OBJECTIVES.build({"name": "clip", "text_width": 30, "text_heads": 4}, Transformer(fitted))
    _, short = fitted_clip(path, {"caption_len": 4})
    with pytest.raises(UserError, match="objective.caption_len=4 is below the 7-token"):
        short(Batch.of(source.batch([0, 1], 16)))
    images_only = {"images": torch.rand(2, 1, 8, 8)}
    with pytest.raises(UserError, match="needs image–caption pairs"):
        short(Batch.of(images_only))
    with pytest.raises(UserError, match=r"the caption vocabulary \(model.vocab_size\)"):
        OBJECTIVES.build({"name": "clip"}, Transformer(replace(fitted, vocab_size=None)))
    with pytest.raises(UserError, match="pairs:cifar: unknown pairs source"):
        prepare_pairs("cifar", tmp_path / "x")
    with pytest.raises(UserError, match="pass --overwrite"):
        prepare_pairs("digits", path)


def test_loss_falls_on_a_repeated_batch(pairs):
    source, objective = fitted_clip(pairs[0])
    params = [*objective.model.parameters(), *objective.owned.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    batch = Batch.of(source.batch(range(32), 16))
    losses = []
    for _ in range(40):
        out = objective(batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5
