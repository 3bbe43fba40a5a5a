"""Length generalisation scores: recall accuracy, held-out loss, longer RoPE tables."""

from __future__ import annotations

import torch
from torch import nn

from thrifty.config import ModelConfig
from thrifty.data.recall import Vocabulary, prepare_recall, recall_file
from thrifty.data.tokenizer import META_ID, load_tokenizer
from thrifty.data.tokens import TokenStore
from thrifty.eval.long_context import extended, heldout_loss, meta_rate, recall_accuracy
from thrifty.models.transformer import Transformer
from thrifty.objectives.meta_tokens import insert_periodic

VOCAB = Vocabulary(keys=12, values=6, filler=5)


class Recaller(nn.Module):
    """Predicts, at each token, what followed its last earlier occurrence: perfect recall."""

    def __init__(self, vocab: int, wrong: bool = False) -> None:
        super().__init__()
        self.cfg = ModelConfig(size="nano", vocab_size=vocab, max_seq_len=1024)
        self.vocab, self.wrong, self.anchor = vocab, wrong, nn.Parameter(torch.zeros(1))

    def forward(self, ids, causal=True):
        out = torch.zeros(*ids.shape, dtype=torch.long)
        for b, row in enumerate(ids.tolist()):
            for t, token in enumerate(row):
                earlier = [s for s in range(t) if row[s] == token]
                out[b, t] = row[earlier[-1] + 1] if earlier and not self.wrong else 0
        return out

    def logits(self, predicted):
        return nn.functional.one_hot(predicted, self.vocab).float()


def test_recall_accuracy_is_one_for_perfect_recall_and_zero_without(tmp_path):
    out = tmp_path / "recall"
    prepare_recall(out, train_len=32, test_lens=(64,), examples=200, test_examples=4,
                   pairs=4, queries=3, vocab=VOCAB)  # fmt: skip
    tok, path = load_tokenizer(out), recall_file(out, 64)
    vocab = tok.get_vocab_size()
    assert recall_accuracy(Recaller(vocab), tok, path) == 1.0
    assert recall_accuracy(Recaller(vocab, wrong=True), tok, path) == 0.0


def test_periodic_meta_tokens_keep_every_token_and_its_order():
    ids = torch.arange(10, 30)[None]
    out, moved = insert_periodic(ids, 0.25)
    assert torch.equal(out[0, moved], ids[0])
    assert (out == META_ID).sum() == out.shape[1] - 20
    assert all(out[0, p] == META_ID for p in range(4, out.shape[1], 4))


def test_heldout_loss_counts_real_targets_and_longer_tables_change_nothing_inside(tmp_path):
    out = tmp_path / "recall"
    prepare_recall(out, train_len=32, test_lens=(32,), examples=100, test_examples=1,
                   pairs=4, queries=3, vocab=VOCAB)  # fmt: skip
    store = TokenStore(out, "valid")
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=store.vocab_size, max_seq_len=32))
    model.eval()
    ids = store.windows([0], 16)
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model.logits(model(ids[:, :-1]))[0], ids[0, 1:])
    assert abs(heldout_loss(model, store, 16, max_windows=1) - expected.item()) < 1e-5
    longer = extended(model, 128)  # no scaling: the same positions, more of them
    with torch.no_grad():
        assert torch.equal(longer(ids), model(ids))
    yarn = extended(model, 64, "yarn", train_len=32)
    assert yarn.cfg.rope_factor == 2.0 and yarn.cfg.max_seq_len == 64
    assert heldout_loss(model, store, 16, rate=0.25, max_windows=1) > 0


def test_the_meta_rate_comes_from_the_objective():
    assert meta_rate({"name": "causal_lm"}) == 0.0
    assert meta_rate({"name": "meta_lm", "rate": 0.1}) == 0.1
    assert meta_rate({"name": "meta_lm"}) == 0.0625
