import pytest
import torch

from thrifty.adamw import adamw
from thrifty.config import ModelConfig, TrainConfig
from thrifty.eval.finetune.classifier import Classifier
from thrifty.eval.finetune.trainer import Settings
from thrifty.eval.finetune.trainer import _optimizer as finetune_optimizer
from thrifty.models.transformer import Transformer
from thrifty.train.optim import LAMB, build_optimizer, lr_at, param_groups


def cfg(**kw) -> TrainConfig:
    return TrainConfig(max_steps=100, **kw)


def test_schedules_warm_up_then_follow_their_shape():
    c = cfg(warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [lr_at(s, 100, c) for s in range(100)]
    assert lrs[0] < lrs[9] <= 1.0
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1, abs=0.01)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    wsd = cfg(warmup_steps=10, lr=1.0, min_lr_ratio=0.0, schedule="wsd", decay_fraction=0.2)
    w = [lr_at(s, 100, wsd) for s in range(100)]
    assert w[50] == w[79] == 1.0 and w[99] < 0.1
    const = cfg(warmup_steps=0, lr=0.5, schedule="constant")
    assert {lr_at(s, 100, const) for s in range(100)} == {0.5}


def test_no_decay_on_norms_and_embeddings_by_default():
    model = Transformer(ModelConfig(size="nano", vocab_size=50))
    decay, no_decay = param_groups(model, cfg())
    assert model.embed.weight in [p for p in no_decay["params"]]
    assert all(p.dim() >= 2 for p in decay["params"])
    all_decay, _ = param_groups(model, cfg(decay_norms_and_embeddings=True))
    assert len(all_decay["params"]) == len(list(model.parameters()))


def test_lamb_trust_ratio_only_on_decayed_groups():
    w = torch.nn.Parameter(torch.ones(4, 4) * 3)
    b = torch.nn.Parameter(torch.ones(4) * 3)
    opt = LAMB([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}], lr=0.1)
    w.grad, b.grad = torch.ones(4, 4), torch.ones(4)
    opt.step()
    # b: plain Adam step of size lr; w: step scaled by ||w|| / ||update||
    assert torch.allclose(b, torch.full((4,), 2.9), atol=1e-4)
    update = 1 + 0.1 * 3
    assert torch.allclose(w, torch.full((4, 4), 3 - 0.1 * 3 / update * update), atol=1e-4)


def test_build_optimizer_kinds():
    model = Transformer(ModelConfig(size="nano", vocab_size=50))
    assert isinstance(build_optimizer(model, cfg()), torch.optim.AdamW)
    assert isinstance(build_optimizer(model, cfg(optimizer="lamb")), LAMB)


def test_pretraining_and_fine_tuning_both_take_the_fused_adamw_step_on_cpu():
    model = Transformer(ModelConfig(size="nano", vocab_size=50))
    assert build_optimizer(model, cfg(), "cpu").defaults["fused"]
    assert adamw(model.parameters(), "meta", lr=1e-3).defaults["fused"] is None  # no kernel
    classifier = Classifier(model, num_labels=2, pooling="first")
    assert finetune_optimizer(classifier, Settings()).defaults["fused"]


def test_lamb_scales_each_update_by_its_trust_ratio():
    torch.manual_seed(0)
    grown, fresh = torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.zeros(3))
    start = grown.detach().clone()
    opt = LAMB([grown, fresh], lr=0.1, betas=(0.9, 0.99), weight_decay=0.01)
    grad = torch.randn(4, 3)
    grown.grad, fresh.grad = grad, torch.ones(3)
    opt.step()
    m, v = 0.1 * grad / (1 - 0.9), 0.01 * grad**2 / (1 - 0.99)
    update = m / (v.sqrt() + 1e-8) + 0.01 * start
    expected = start - 0.1 * (start.norm() / update.norm()) * update
    torch.testing.assert_close(grown.detach(), expected)
    # a zero weight norm (a fresh bias) has no trust ratio: the update is applied as it is
    torch.testing.assert_close(fresh.detach(), torch.full((3,), -0.1), rtol=1e-5, atol=1e-6)


def test_an_update_clips_the_gradients_of_every_trained_network_and_steps_the_average():
    from thrifty.train.ema import WeightAverage
    from thrifty.train.step import apply_gradients

    model, owned = torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    for net in (model, owned):
        torch.nn.init.zeros_(net.weight)
    model.weight.grad = torch.tensor([[3.0, 0.0]])
    owned.weight.grad = torch.tensor([[4.0]])  # the norm over both networks: 5
    optimizer = torch.optim.SGD([*model.parameters(), *owned.parameters()], lr=1.0)
    ema = WeightAverage(model, decay=0.5)
    norm = apply_gradients([model, owned], optimizer, 1.0, averaged=True, ema=ema)
    assert norm.item() == pytest.approx(5.0)  # before clipping
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[-0.6, 0.0]]))
    torch.testing.assert_close(owned.weight.detach(), torch.tensor([[-0.8]]))
    assert model.weight.grad is None and owned.weight.grad is None
    torch.testing.assert_close(ema.average["weight"], torch.tensor([[-0.3, 0.0]]))
