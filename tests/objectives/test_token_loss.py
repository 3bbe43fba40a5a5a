"""The fused CPU head + cross-entropy, and the dense head of accelerators (every position, no
gather), must each equal the plain logits -> F.cross_entropy path."""

import pytest
import torch
import torch.nn.functional as F

from thrifty.config import ModelConfig
from thrifty.models.transformer import Transformer
from thrifty.objectives import token_loss
from thrifty.objectives.base import IGNORE
from thrifty.objectives.token_loss import token_term


def reference(model, hidden, targets, weights, z_loss):
    supervised = targets != IGNORE
    logits = model.logits(hidden[supervised])
    losses = F.cross_entropy(logits, targets[supervised], reduction="none")
    if z_loss:
        losses = losses + z_loss * torch.logsumexp(logits, -1).pow(2)
    rows = supervised.nonzero()[:, 0]
    per_row = torch.zeros(targets.shape[0]).index_add(0, rows, losses) / supervised.sum(1)
    return (weights * per_row).sum() if weights is not None else losses.mean()


@pytest.mark.parametrize("z_loss", [0.0, 1e-2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("path", ["fused", "dense"])
def test_head_matches_cross_entropy(z_loss, weighted, partial, path, monkeypatch):

    monkeypatch.setattr(
        token_loss, "HEAD_CHUNK_LOGITS", 97 * 7
    )  # several chunks with a ragged tail
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=97, max_seq_len=32))
    hidden = torch.randn(4, 9, model.cfg.d_model, requires_grad=True)
    targets = torch.randint(0, 97, (4, 9))
    if partial:
        targets[torch.rand(4, 9) < 0.6] = IGNORE
        targets[:, 0] = 5  # every row supervises at least one position
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4]) if weighted else None

    if path == "fused":
        term, per_row, _ = token_term(model, hidden, targets, weights, z_loss)
    else:
        term, per_row, _ = token_loss._dense_token_term(
            model, hidden, targets, weights, z_loss, None
        )
    loss = term.value
    (3.0 * loss).backward()
    got = (hidden.grad.clone(), model.embed.weight.grad.clone())
    hidden.grad, model.embed.weight.grad = None, None
    expected = reference(model, hidden, targets, weights, z_loss)
    (3.0 * expected).backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[0], hidden.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got[1], model.embed.weight.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("weighted", [False, True])
def test_fused_head_under_bf16_autocast_matches_autocast_cross_entropy(weighted, monkeypatch):
    """Under CPU bf16 autocast the fused head multiplies in bf16 and takes the softmax in fp32,
    as the unfused path under autocast does: same loss, gradients at bf16 precision."""
    monkeypatch.setattr(token_loss, "HEAD_CHUNK_LOGITS", 97 * 7)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=97, max_seq_len=32))
    hidden = torch.randn(4, 9, model.cfg.d_model, requires_grad=True)
    targets = torch.randint(0, 97, (4, 9))
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4]) if weighted else None
    assert token_loss._cpu_head_dtype(hidden, model.embed.weight) == torch.float32
    results = []
    for fused in (True, False):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert token_loss._cpu_head_dtype(hidden, model.embed.weight) == torch.bfloat16
            if fused:
                term, per_row, metrics = token_term(model, hidden, targets, weights, 0.0)
            else:
                term, per_row, metrics = token_loss._dense_token_term(
                    model, hidden, targets, weights, 0.0, None
                )
        term.value.backward()
        results.append((term.value, per_row, hidden.grad, model.embed.weight.grad))
        hidden.grad, model.embed.weight.grad = None, None
    (loss, per_row, grad_h, grad_w), (ref_loss, ref_row, ref_h, ref_w) = results
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(per_row, ref_row, rtol=1e-5, atol=1e-6)
    scale_h, scale_w = ref_h.abs().max(), ref_w.abs().max()
    assert (grad_h - ref_h).abs().max() < 1e-2 * scale_h
    assert (grad_w - ref_w).abs().max() < 1e-2 * scale_w
    assert grad_h.dtype == hidden.dtype and grad_w.dtype == torch.float32


def test_fused_accuracy_is_argmax_accuracy_and_counts_ties_as_hits():
    torch.manual_seed(1)
    model = Transformer(ModelConfig(size="nano", vocab_size=97, max_seq_len=32))
    hidden = torch.randn(3, 8, model.cfg.d_model)
    targets = torch.randint(0, 97, (3, 8))
    targets[0, :4] = model.logits(hidden[0, :4]).argmax(-1)  # some hits for sure
    with torch.no_grad():
        _, _, metrics = token_term(model, hidden, targets, None, 0.0)
        expected = (model.logits(hidden).argmax(-1) == targets).float().mean().item()
        assert metrics["accuracy"] == pytest.approx(expected)
        # all logits equal: every target ties the top logit
        _, _, metrics = token_term(model, torch.zeros_like(hidden), targets, None, 0.0)
    assert metrics["accuracy"] == 1.0


def test_fused_loss_of_a_target_far_below_the_top_logit():
    """p(target) from the softmax underflows once its logit is ~100 nats below the others';
    such rows take logsumexp - logit, so the loss stays exact and finite."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=97, max_seq_len=32))
    u = torch.randn(model.cfg.d_model)
    with torch.no_grad():
        model.embed.weight[4] = -u / u.square().sum()  # token 4's logit: -scale
    hidden = (u * torch.tensor([1.0, 30.0, 300.0])[:, None])[:, None]  # (3, 1, C)
    targets = torch.full((3, 1), 4)
    _, per_row, _ = token_term(model, hidden, targets, None)
    expected = F.cross_entropy(model.logits(hidden[:, 0]), targets[:, 0], reduction="none")
    assert per_row[2] > 300 and torch.isfinite(per_row).all()
    torch.testing.assert_close(per_row, expected.detach(), rtol=1e-5, atol=1e-5)
