import math
import random

import pytest
import torch

from thrifty.data.code_task import prepare_code
from thrifty.data.tokenizer import BOS_ID, SEP_ID, load_tokenizer
from thrifty.eval import code_probes


class Constant(torch.nn.Module):
    """A causal "model" whose next-token distribution is always the same."""

    def __init__(self, vocab: int, token: int | None = None) -> None:
        super().__init__()
        self.vocab, self.token = vocab, token

    def forward(self, ids, causal=True):
        return torch.zeros(*ids.shape, 1)

    def logits(self, hidden):
        out = torch.zeros(*hidden.shape[:-1], self.vocab)
        if self.token is not None:
            out[..., self.token] = 1.0
        return out


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    rng = random.Random(2)
    corpus = tmp_path_factory.mktemp("code")
    for i in range(20):
        a, b = rng.sample(["alpha", "beta", "total", "count", "item"], 2)
        text = (f"def run_{i}(self, {a}):\n    {b} = {a} + 1\n    print({b})\n"
                f"    return {b}\n")  # fmt: skip
        (corpus / f"m{i}.py").write_text(text)
    data = tmp_path_factory.mktemp("data") / "plain"
    prepare_code(corpus, data, seq_len=64, vocab_size=300, valid_fraction=0.3)
    tok = load_tokenizer(data)
    files = code_probes.held_out_files(data)
    return tok, files, code_probes.probe_units(files, tok, 64, limit=50)


def test_probes_stop_right_before_each_name(held_out):
    tok, _, units = held_out
    for prompt in ("pair", "map"):
        for unit in units:
            probes = code_probes._probes(unit, tok, prompt)
            assert len(probes) == len(unit.names)
            for probe, (_, name) in zip(probes, unit.names):
                assert probe.prefix[: len(unit.obf) + 2] == [BOS_ID, *unit.obf, SEP_ID]
                assert tok.decode(probe.target).strip(" (") == name


def test_recovery_counts_exact_greedy_matches(held_out):
    tok, _, units = held_out
    probes = [p for u in units for p in code_probes._probes(u, tok, "map")]
    single = [p.target for p in probes if len(p.target) == 1]
    token = max(single, key=single.count)  # the one name a constant model can get right
    model = Constant(tok.get_vocab_size(), token[0])
    expected = sum(p.target == token for p in probes) / len(probes)
    assert 0 < expected < 1
    assert code_probes.identifier_recovery(model, tok, units, "map") == pytest.approx(expected)


def test_plain_loss_of_a_uniform_model_is_log_vocab_and_swaps_keep_the_lines(held_out):
    tok, files, _ = held_out
    vocab = tok.get_vocab_size()
    loss = code_probes.plain_loss(Constant(vocab), tok, files, 16)
    assert loss == pytest.approx(math.log(vocab), rel=1e-5)
    pairs = code_probes.swap_pairs(files, tok, 64, limit=10)
    assert pairs and all(a != b and sorted(a.splitlines()) == sorted(b.splitlines())
                         for a, b in pairs)  # fmt: skip
