import pytest
import torch

from thrifty.config import ModelConfig
from thrifty.models.transformer import Transformer


def nano(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(size="nano", vocab_size=97, max_seq_len=32, **kw))


def test_causal_logits_ignore_the_future():
    model = nano()
    ids = torch.randint(6, 97, (2, 16))
    changed = ids.clone()
    changed[:, 10] = (ids[:, 10] + 1 - 6) % 91 + 6
    a, b = model(ids, causal=True), model(changed, causal=True)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_bidirectional_sees_the_future():
    model = nano()
    ids = torch.randint(6, 97, (1, 16))
    changed = ids.clone()
    changed[0, 10] = (ids[0, 10] + 1 - 6) % 91 + 6
    assert not torch.allclose(
        model(ids, causal=False)[:, :10], model(changed, causal=False)[:, :10]
    )


def test_right_padding_does_not_change_real_positions():
    model = nano()
    ids = torch.randint(6, 97, (1, 9))
    padded = torch.cat([ids, torch.zeros(1, 7, dtype=torch.long)], dim=1)
    real = torch.arange(16)[None] < 9
    for causal in (True, False):
        alone = model(ids, causal=causal)
        with_pad = model(padded, causal=causal, padding=real)[:, :9]
        assert torch.allclose(alone, with_pad, atol=1e-5)


def test_named_sizes_and_counts():
    sizes = {}
    for size in ("nano", "mini", "small", "base"):
        model = Transformer(ModelConfig(size=size, vocab_size=8192))
        sizes[size] = model.num_params()
        assert model.flops_per_token(128) > 6 * model.num_params(embeddings=False)
    assert sizes["nano"] < 1.5e6 and 3e6 <= sizes["mini"] <= 10e6
    assert 20e6 <= sizes["small"] <= 40e6 and sizes["base"] > 80e6


def test_heads_must_divide_width():
    from thrifty.errors import UserError

    with pytest.raises(UserError, match="n_heads"):
        ModelConfig(size="nano", n_heads=3)


def test_tied_embeddings():
    model = nano()
    h = torch.randn(3, model.cfg.d_model)
    assert torch.equal(model.logits(h), h @ model.embed.weight.T)
