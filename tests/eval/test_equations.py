"""Answer accuracy: 1.0 for an oracle, chance or less for a random model, only answer tokens
count, and answers of several tokens must be right in full."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thrifty.config import ModelConfig
from thrifty.data.modular import Equation, equations, prepare_modular
from thrifty.data.tokenizer import BOS_ID, PAD_ID, load_tokenizer, train_tokenizer
from thrifty.data.tokens import TokenStore
from thrifty.eval.equations import (
    answer_accuracy,
    encode_equations,
    equation_correct,
    store_equations,
)
from thrifty.models.transformer import Transformer

P = 11


class Oracle(nn.Module):
    """Puts all mass on the true next token of any prefix of the given token rows; ``wrong``
    positions (counted from the row's end, -1 the last token) predict something else."""

    def __init__(self, rows: list[list[int]], vocab: int, wrong: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # answer_accuracy reads its device
        self.vocab, self.next = vocab, {}
        for row in rows:
            while row and row[-1] == PAD_ID:  # right padding is no part of the equation
                row = row[:-1]
            for t in range(1, len(row)):
                miss = t - len(row) in wrong
                self.next[tuple(row[:t])] = (row[t] + miss) % vocab

    def forward(self, ids: torch.Tensor, causal: bool = True) -> torch.Tensor:
        assert causal
        out = torch.zeros(*ids.shape, self.vocab)  # (B, T, V): these "hidden states" are logits
        for b, row in enumerate(ids.tolist()):
            for t in range(len(row)):
                out[b, t, self.next.get(tuple(row[: t + 1]), 0)] = 1.0
        return out

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("equations") / "add"
    prepare_modular(out, modulus=P, operation="add", train_fraction=0.5, seed=0)
    return out


def oracle_for(tokenizer, eqs, wrong=()) -> Oracle:
    ids, _ = encode_equations(eqs, tokenizer)
    return Oracle(ids.tolist(), tokenizer.get_vocab_size(), wrong)


def test_an_oracle_scores_one_on_the_held_out_equations(dataset):
    tokenizer = load_tokenizer(dataset)
    oracle = oracle_for(tokenizer, list(equations(P, "add")))
    assert answer_accuracy(oracle, tokenizer, dataset) == 1.0
    assert answer_accuracy(oracle, tokenizer, TokenStore(dataset, "train")) == 1.0
    assert oracle.training  # the caller's mode is left as it was


def test_only_the_answer_counts(dataset):
    tokenizer = load_tokenizer(dataset)
    eqs = list(equations(P, "add"))
    # wrong about a, b and the operator: still right, since those are not the answer
    assert answer_accuracy(oracle_for(tokenizer, eqs, wrong=(-5, -4, -3)), tokenizer, dataset) == 1
    assert answer_accuracy(oracle_for(tokenizer, eqs, wrong=(-1,)), tokenizer, dataset) == 0.0


def test_a_random_model_scores_about_chance_or_less(dataset):
    tokenizer = load_tokenizer(dataset)
    torch.manual_seed(0)
    cfg = ModelConfig(size="nano", vocab_size=tokenizer.get_vocab_size(), max_seq_len=16)
    accuracy = answer_accuracy(Transformer(cfg), tokenizer, dataset, batch_size=7)
    assert 0.0 <= accuracy <= 2 / P


def test_the_held_out_equations_are_decoded(dataset):
    found = store_equations(TokenStore(dataset, "valid"), load_tokenizer(dataset))
    assert len(found) == P * P - P * P // 2 and all(e.c == (e.a + e.b) % P for e in found)


def test_multi_token_answers_must_be_right_in_full():
    # a bytes-only BPE: " 10" is three tokens (space, 1, 0), so answers span several positions
    tokenizer = train_tokenizer(["1 + 2 = 3"], vocab_size=262)
    eqs = [Equation(7, "+", 5, 12), Equation(3, "+", 4, 7), Equation(60, "*", 2, 120)]
    ids, is_answer = encode_equations(eqs, tokenizer)
    assert is_answer.sum(1).tolist() == [3, 2, 4]  # the space, then one token per digit
    assert (ids[:, 0] == BOS_ID).all()
    full = Oracle(ids.tolist(), tokenizer.get_vocab_size())
    assert equation_correct(full, ids, is_answer, batch_size=2).tolist() == [True] * 3
    last_digit_wrong = Oracle(ids.tolist(), tokenizer.get_vocab_size(), wrong=(-1,))
    assert not equation_correct(last_digit_wrong, ids, is_answer).any()
