import pytest
import torch

from thrifty.config import ModelConfig, TrainConfig
from thrifty.data.tokenizer import NUM_SPECIAL
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch
from thrifty.objectives.positions import Positions
from thrifty.objectives.randomness import RowRandom
from thrifty.objectives.rtd import generator_config
from thrifty.train.optim import param_groups


def build(vocab=97, **cfg):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=vocab, max_seq_len=64))
    return model, OBJECTIVES.build({"name": "electra", **cfg}, model, seed=0)


def windows(B=8, T=33, vocab=97, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(NUM_SPECIAL, vocab, (B, T), generator=g)


def grad(p: torch.Tensor) -> float:
    return 0.0 if p.grad is None else p.grad.abs().sum().item()


def test_labels_are_input_differs_from_corrupted_and_a_correct_sample_is_original():
    vocab = NUM_SPECIAL + 3  # three real tokens: the generator often samples the original
    _, objective = build(vocab, mask_rate=0.5)
    ids = windows(16, 40, vocab)
    c = objective.corrupt(Batch(torch.cat([ids, ids[:, :1]], 1)))  # inputs: all but the last
    assert torch.equal(c.labels, c.corrupted != ids)
    assert torch.equal(c.corrupted[~c.chosen], ids[~c.chosen])  # only chosen positions change
    assert (c.corrupted >= NUM_SPECIAL).all()  # never samples a special token
    resampled_original = c.chosen & (c.corrupted == ids)
    assert resampled_original.sum() > 20 and not c.labels[resampled_original].any()
    assert c.labels[c.chosen].any()


def test_generator_is_a_narrow_transformer_of_the_same_class():
    model, objective = build()
    gen = objective.owned.generator
    assert isinstance(gen, Transformer) and gen.cfg.n_layers == model.cfg.n_layers
    assert gen.cfg.d_model == model.cfg.d_model // 4
    mini = generator_config(ModelConfig(size="mini"), 0.25, 0.5)
    assert (mini.d_model, mini.n_heads, mini.n_layers) == (64, 1, 2)


def test_gdes_keeps_the_discriminator_loss_off_the_generator_embedding():
    model, objective = build(embedding_sharing="gdes")
    parts = objective.owned
    assert not parts.embed_delta.any()  # E_Δ = 0: E_D = E_G at init
    assert torch.equal(model.embed.weight, parts.gen_embed)
    terms, _ = objective.terms(Batch(windows()))
    terms["rtd"].loss.backward(retain_graph=True)
    assert grad(parts.gen_embed) == 0 and grad(parts.embed_delta) > 0
    assert all(grad(p) == 0 for p in parts.generator.parameters())
    assert model.embed.weight.grad is None  # not trained directly
    objective.owned.zero_grad(set_to_none=True)
    terms["gen"].loss.backward()
    assert grad(parts.gen_embed) > 0 and grad(parts.embed_delta) == 0


def test_gdes_model_state_holds_the_folded_embedding():
    model, objective = build(embedding_sharing="gdes")
    parts = objective.owned
    with torch.no_grad():
        parts.embed_delta.normal_()
        parts.gen_embed.add_(1.0)
    folded = parts.gen_embed + parts.embed_delta
    assert torch.equal(model.state_dict()["embed.weight"], folded)  # what checkpoints save
    with torch.no_grad():
        parts.embed_delta.mul_(2)
    model(windows(1), causal=False)  # a forward outside the objective sees E_G + E_Δ too
    assert torch.equal(model.embed.weight, parts.gen_embed + parts.embed_delta)
    decay, no_decay = param_groups(model, TrainConfig(max_steps=1), parts)
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert id(model.embed.weight) not in ids(decay["params"]) | ids(no_decay["params"])
    assert {id(parts.gen_embed), id(parts.embed_delta)} <= ids(no_decay["params"])
    assert id(parts.generator.embed.proj.weight) in ids(decay["params"])


def test_es_lets_both_losses_reach_the_shared_table():
    model, objective = build(embedding_sharing="es")
    assert objective.owned.table() is model.embed.weight
    assert objective.owned.gen_embed is None
    terms, _ = objective.terms(Batch(windows()))
    terms["gen"].loss.backward(retain_graph=True)
    from_gen = grad(model.embed.weight)
    model.zero_grad(set_to_none=True)
    terms["rtd"].loss.backward()
    assert from_gen > 0 and grad(model.embed.weight) > 0


def test_no_sharing_keeps_each_loss_on_its_own_table():
    model, objective = build(embedding_sharing="none")
    terms, _ = objective.terms(Batch(windows()))
    terms["gen"].loss.backward(retain_graph=True)
    assert grad(model.embed.weight) == 0 and grad(objective.owned.gen_embed) > 0
    objective.owned.zero_grad(set_to_none=True)
    terms["rtd"].loss.backward()
    assert grad(objective.owned.gen_embed) == 0 and grad(model.embed.weight) > 0


def test_lambda_scales_only_the_rtd_term():
    ids = windows()
    outs = {}
    for lam in (50.0, 3.0):
        _, objective = build(rtd_weight=lam)
        outs[lam] = objective(Batch(ids))
    a, b = outs[50.0], outs[3.0]
    assert a.metrics["gen_loss"] == b.metrics["gen_loss"]
    assert a.metrics["rtd_loss"] == b.metrics["rtd_loss"]
    gen, rtd = float(a.metrics["gen_loss"]), float(a.metrics["rtd_loss"])  # 0-dim tensors
    assert a.loss.item() == pytest.approx(gen + 50 * rtd, rel=1e-6)
    assert b.loss.item() == pytest.approx(gen + 3 * rtd, rel=1e-6)


def test_metrics_and_rtd_loss_over_all_real_tokens():
    _, objective = build()
    ids = windows()
    ids[:, -3:] = 0  # padding: ignored by the RTD loss
    out = objective(Batch(ids))
    for key in ("gen_loss", "gen_acc", "replaced", "rtd_loss", "rtd_p", "rtd_r"):
        assert key in out.metrics
    assert 0.1 < out.metrics["replaced"] < 0.2  # ≈ (1 - 1/V) · 15% at init
    assert out.sample_losses.shape == (8,)


def test_sampling_follows_the_generator_distribution():
    _, objective = build()
    logits = torch.full((20000, 97), -30.0)
    logits[:, 10], logits[:, 20] = 0.0, torch.log(torch.tensor(3.0))
    logits[:, 2] = 5.0  # a special token: never sampled
    at = torch.ones(4, 5000, dtype=torch.bool)  # 4 rows of 5000 positions, row-major
    picked = objective.sample(
        logits, Positions.drawn(at, "cpu"), RowRandom(0, "sample", 0, range(4))
    )
    assert set(picked.tolist()) == {10, 20}
    assert (picked == 20).float().mean().item() == pytest.approx(0.75, abs=0.02)


def test_flops_count_the_generator_and_heads():
    model, objective = build()
    assert objective.head_fraction() == 0.0
    gen_only = objective.owned.generator.flops_per_token(32, 0.15)
    assert objective.extra_flops_per_token(32) > gen_only > 0
    assert objective.extra_flops_per_token(32) < model.flops_per_token(32, 0.0)


def test_detection_auc_counts_ordered_pairs():
    from thrifty.objectives.rtd import detection_metrics

    logits = torch.tensor([[3.0, -1.0, 0.5, -2.0, 1.0]])
    labels = torch.tensor([[True, False, False, False, True]])
    real = torch.ones_like(labels)
    m = detection_metrics(logits, labels, real)
    assert m["auc"] == pytest.approx(1.0)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0
    m = detection_metrics(-logits, labels, real)
    assert m["auc"] == pytest.approx(0.0) and m["precision"] == 0.0
