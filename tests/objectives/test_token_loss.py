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
