"""``meta`` attention: the three invariants of the meta-tokens card, and its wiring."""

from __future__ import annotations

import pytest
import torch

from thrifty.config import ModelConfig
from thrifty.data.tokenizer import META_ID, NUM_SPECIAL
from thrifty.models.attention.meta import MetaAttention
from thrifty.models.transformer import Transformer

VOCAB, T = 64, 16


def models(**meta) -> tuple[Transformer, Transformer]:
    """A meta-attention model and the mha model with the same (shared) weights."""
    torch.manual_seed(0)
    with_meta = Transformer(
        ModelConfig(size="nano", vocab_size=VOCAB, attention={"name": "meta", **meta})
    )
    plain = Transformer(ModelConfig(size="nano", vocab_size=VOCAB))
    missing, unexpected = plain.load_state_dict(with_meta.state_dict(), strict=False)
    assert not missing and all(".meta_" in key for key in unexpected)
    return with_meta, plain


def text(rows: int = 2) -> torch.Tensor:
    return torch.randint(NUM_SPECIAL, VOCAB, (rows, T), generator=torch.Generator().manual_seed(1))


def test_without_meta_tokens_it_is_exactly_the_plain_attention():
    with_meta, plain = models()
    ids = text()
    for causal in (True, False):
        assert torch.equal(with_meta(ids, causal=causal), plain(ids, causal=causal))


def test_with_meta_tokens_it_reads_them():
    with_meta, plain = models()
    ids = text()
    ids[:, 5] = META_ID
    a, b = with_meta(ids), plain(ids)
    assert torch.equal(a[:, :5], b[:, :5])  # nothing before the first <m> can read it
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_meta_attention_is_causal():
    torch.manual_seed(0)
    layer = MetaAttention(MetaAttention.Config(), ModelConfig(size="nano", vocab_size=VOCAB))
    cos, sin = torch.ones(T, 32), torch.zeros(T, 32)  # no rotation: positions play no part
    x = torch.randn(1, T, 64)
    ids = text(1)
    ids[0, [2, 9]] = META_ID
    before = layer.meta_attention(x, cos, sin, True, None, ids)
    later = x.clone()
    later[0, 9:] += 1.0  # change the later meta-token and everything after it
    after = layer.meta_attention(later, cos, sin, True, None, ids)
    assert torch.equal(before[0, :9], after[0, :9])
    assert torch.all(before[0, :2] == 0)  # no meta-token to read yet: exactly zero
    assert not torch.equal(before[0, 9:], after[0, 9:])


def test_only_meta_queries_read_meta_tokens_when_asked():
    torch.manual_seed(0)
    layer = MetaAttention(
        MetaAttention.Config(queries="meta"), ModelConfig(size="nano", vocab_size=VOCAB)
    )
    x, ids = torch.randn(1, T, 64), text(1)
    ids[0, [3, 8]] = META_ID
    out = layer.meta_attention(x, torch.ones(T, 32), torch.zeros(T, 32), True, None, ids)
    reads = torch.zeros(T, dtype=torch.bool)
    reads[[3, 8]] = True
    assert torch.all(out[0, ~reads] == 0) and torch.all(out[0, reads].abs().sum(-1) > 0)


def test_gradients_stay_finite_where_nothing_is_read():
    with_meta, _ = models()
    ids = text()
    ids[0, 7] = META_ID  # row 1 has none; row 0 has positions before and after it
    with_meta(ids).square().sum().backward()
    for name, p in with_meta.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("attention", ["mha", "meta"])
def test_flops_count_the_sub_layer(attention):
    model = Transformer(ModelConfig(size="nano", vocab_size=VOCAB, attention={"name": attention}))
    plain = Transformer(ModelConfig(size="nano", vocab_size=VOCAB))
    ratio = model.flops_per_token(T) / plain.flops_per_token(T)
    assert ratio == 1.0 if attention == "mha" else ratio > 1.2
