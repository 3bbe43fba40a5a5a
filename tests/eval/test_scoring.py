"""Scorers against naive one-sentence, one-copy loops (BabyLM §4, GPT-BERT §7)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from thrifty.config import ModelConfig
from thrifty.data.tokenizer import BOS_ID, MASK_ID
from thrifty.errors import UserError
from thrifty.eval import prefix_tree, scoring
from thrifty.eval.readout import hidden_at
from thrifty.eval.scoring import VARIANTS, encode, score_continuations, score_sentences
from thrifty.models.transformer import Transformer
from thrifty.objectives import OBJECTIVES, Batch


def ids_of(tokenizer, text: str) -> list[int]:
    return [BOS_ID] + tokenizer.encode(text, add_special_tokens=False).ids


@torch.no_grad()
def naive_pll(model, ids: list[int], shift: int, words: list[int] | None = None) -> float:
    """One bidirectional forward per scored token; ``words`` switches on within_word_l2r."""
    total = 0.0
    for t in range(1, len(ids)):
        x = torch.tensor(ids)
        x[t] = MASK_ID
        if words is not None:
            for j in range(t, len(ids)):
                if words[j] == words[t]:
                    x[j] = MASK_ID
        logits = model.logits(model(x[None], causal=False))[0]
        total += logits[t - shift].log_softmax(-1)[ids[t]].item()
    return total


def test_causal_is_minus_training_cross_entropy_times_length(toy, tiny_run):
    objective = OBJECTIVES.build({"name": "causal_lm"}, tiny_run.model)
    texts = toy.texts(8, seed=1)
    scores = score_sentences(tiny_run.model, tiny_run.tokenizer, texts, "causal")
    for text, score in zip(texts, scores, strict=True):
        ids = torch.tensor(ids_of(tiny_run.tokenizer, text))
        with torch.no_grad():
            loss = objective(Batch(ids[None])).loss.item()  # mean CE over the n real tokens
            logits = tiny_run.model.logits(tiny_run.model(ids[None, :-1]))[0]
            direct = -F.cross_entropy(logits, ids[1:], reduction="sum").item()
        assert score == pytest.approx(-loss * (len(ids) - 1), rel=1e-5)
        assert score == pytest.approx(direct, rel=1e-6)


@pytest.mark.parametrize(
    "backend,variant",
    [("causal", "original")] + [(b, v) for b in ("mlm", "mntp") for v in VARIANTS],
)
def test_batching_and_padding_do_not_change_scores(toy, tiny_run, backend, variant):
    texts = toy.texts(12, seed=2)[:-1] + [" ".join(toy.rare), "a", ""]
    m, tok = tiny_run.model, tiny_run.tokenizer
    alone = [score_sentences(m, tok, [t], backend, variant=variant)[0] for t in texts]
    for cap in (40, 10**6):  # many small batches; one padded batch holding everything
        batched = score_sentences(m, tok, texts, backend, variant=variant, max_batch_tokens=cap)
        assert batched == pytest.approx(alone, rel=1e-6, abs=1e-5)
    assert alone[-1] == 0.0  # nothing to score after <s>


@pytest.mark.parametrize("backend", ["causal", "mlm"])
def test_head_chunks_do_not_change_scores(toy, tiny_run, monkeypatch, backend):
    texts = toy.texts(12, seed=3)
    m, tok = tiny_run.model, tiny_run.tokenizer
    whole = score_sentences(m, tok, texts, backend)
    # a few rows per chunk, with a ragged last one
    monkeypatch.setattr(scoring, "CPU_HEAD_CHUNK_ELEMS", 7 * m.cfg.vocab_size)
    assert score_sentences(m, tok, texts, backend) == pytest.approx(whole, rel=1e-6, abs=1e-5)


@pytest.mark.parametrize("backend,shift", [("mlm", 0), ("mntp", 1)])
def test_masked_scores_equal_a_naive_copy_loop(toy, tiny_run, backend, shift):
    texts = toy.texts(6, seed=3)[:-1] + [" ".join(toy.rare)]
    scores = score_sentences(tiny_run.model, tiny_run.tokenizer, texts, backend)
    for text, score in zip(texts, scores, strict=True):
        expected = naive_pll(tiny_run.model, ids_of(tiny_run.tokenizer, text), shift)
        assert score == pytest.approx(expected, rel=1e-5)


def test_mntp_and_mlm_read_different_positions(toy, tiny_run):
    texts = toy.texts(4, seed=4)
    mlm = score_sentences(tiny_run.model, tiny_run.tokenizer, texts, "mlm")
    mntp = score_sentences(tiny_run.model, tiny_run.tokenizer, texts, "mntp")
    assert all(abs(a - b) > 1e-3 for a, b in zip(mlm, mntp, strict=True))


def test_words_are_whitespace_separated(tiny_run):
    text = "the tourists  sat? héllo"
    packed = encode(tiny_run.tokenizer, [text], words=True)
    enc = tiny_run.tokenizer.encode(text, add_special_tokens=False)
    words = packed.words.tolist()
    assert words[0] == -1  # <s>
    for (start, end), w in zip(enc.offsets, words[1:], strict=True):
        piece = text[start:end].strip()
        if piece:
            assert piece in text.split()[w]
    assert sorted(set(words[1:])) == [0, 1, 2, 3]


def test_within_word_l2r_matches_a_naive_loop(toy, tiny_run):
    text = " ".join(toy.rare[:3]) + " the cat"
    packed = encode(tiny_run.tokenizer, [text], words=True)
    ids, words = packed.flat.tolist(), packed.words.tolist()
    for backend, shift in (("mlm", 0), ("mntp", 1)):
        [score] = score_sentences(
            tiny_run.model, tiny_run.tokenizer, [text], backend, variant="within_word_l2r"
        )
        assert score == pytest.approx(naive_pll(tiny_run.model, ids, shift, words), rel=1e-5)


def test_within_word_l2r_equals_pll_when_words_are_single_tokens(toy, tiny_run):
    tok = tiny_run.tokenizer
    rng = random.Random(5)
    texts = [" ".join(rng.choices(toy.common, k=6)) for _ in range(40)]
    texts = [t for t in texts if len(tok.encode(t, add_special_tokens=False).ids) == 6]
    assert len(texts) >= 10
    for backend in ("mlm", "mntp"):
        a = score_sentences(tiny_run.model, tok, texts, backend)
        b = score_sentences(tiny_run.model, tok, texts, backend, variant="within_word_l2r")
        assert a == b


@pytest.fixture(scope="module")
def trained_mlm(toy, tiny_run):
    """A nano MLM trained on sentences with split rare words, so it learns to complete them."""
    tok = tiny_run.tokenizer
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=tok.get_vocab_size(), max_seq_len=64))
    objective = OBJECTIVES.build({"name": "masked_lm", "mask_rate": 0.3}, model, seed=0)
    rng = random.Random(0)
    texts = [" ".join(rng.choices(toy.common + toy.rare, k=8)) for _ in range(512)]
    rows = [ids_of(tok, t)[:33] for t in texts]
    rows = torch.tensor([r + [BOS_ID] * (33 - len(r)) for r in rows])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(150):
        batch = rows[torch.randint(0, len(rows), (32,), generator=g)]
        objective(Batch(batch, progress=step / 150, micro=step)).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


def test_within_word_l2r_is_lower_on_multi_token_words(toy, tiny_run, trained_mlm):
    tok = tiny_run.tokenizer
    assert all(len(tok.encode(" " + w).ids) > 1 for w in toy.rare)
    rng = random.Random(6)
    texts = [
        " ".join(rng.choices(toy.common, k=4) + rng.choices(toy.rare, k=2)) for _ in range(100)
    ]
    pll = score_sentences(trained_mlm, tok, texts, "mlm")
    l2r = score_sentences(trained_mlm, tok, texts, "mlm", variant="within_word_l2r")
    assert sum(l2r) / len(l2r) < sum(pll) / len(pll) - 1.0  # in-word tokens no longer free


def test_continuation_is_the_difference_of_sentence_scores(tiny_run):
    m, tok = tiny_run.model, tiny_run.tokenizer
    contexts, conts = ["the cat", "a dog ran"], [" sat on the mat", " in the park"]
    full = score_sentences(m, tok, [c + x for c, x in zip(contexts, conts)], "causal")
    ctx = score_sentences(m, tok, contexts, "causal")
    cont = score_continuations(m, tok, contexts, conts, "causal")
    assert cont == pytest.approx([f - c for f, c in zip(full, ctx)], rel=1e-5)
    for backend in ("mlm", "mntp"):
        assert len(score_continuations(m, tok, contexts, conts, backend)) == 2


def test_bad_arguments_are_user_errors(tiny_run):
    m, tok = tiny_run.model, tiny_run.tokenizer
    assert score_sentences(m, tok, [], "causal") == []
    with pytest.raises(UserError, match="backend"):
        score_sentences(m, tok, ["the cat"], "bert")
    with pytest.raises(UserError, match="variant"):
        score_sentences(m, tok, ["the cat"], "causal", variant="within_word_l2r")
    with pytest.raises(UserError, match="max_seq_len"):
        score_sentences(m, tok, ["the cat " * 40], "causal")


@torch.no_grad()
def naive_causal(model, ids: list[int], first: int = 1) -> float:
    """One causal forward for one sequence; sum of log p(ids[t] | ids[<t]) for t >= first."""
    x = torch.tensor(ids)[None]
    logp = model.logits(model(x[:, :-1], causal=True))[0].log_softmax(-1)
    return sum(logp[t - 1, ids[t]].item() for t in range(first, len(ids)))


@pytest.mark.parametrize("pack_nodes", [4, 128])
def test_shared_prefixes_score_as_separate_sequences(toy, tiny_run, monkeypatch, pack_nodes):
    """Prefix-tree packing: duplicates, prefixes of other sentences, splits between tries."""
    monkeypatch.setattr(prefix_tree, "PACK_NODES", pack_nodes)
    m, tok = tiny_run.model, tiny_run.tokenizer
    base = toy.texts(6, seed=7)
    texts = base + [base[0], base[0] + " the cat", base[0] + " a dog", base[1][:5], "", "a"]
    texts += [base[2] + " big", base[2] + " big red", base[2]]
    expected = [naive_causal(m, ids_of(tok, t)) for t in texts]
    for cap in (16, 10**6):
        scores = score_sentences(m, tok, texts, "causal", max_batch_tokens=cap)
        assert scores == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_leaves_stay_out_of_the_forward_pass(tiny_run):
    """Only nodes with a child (and the root) are embedded and run through the blocks."""
    m, tok = tiny_run.model, tiny_run.tokenizer
    texts = ["the cat sat", "the cat ran", "the dog"]
    seen = []
    hook = m.embed.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    try:
        scores = score_sentences(m, tok, texts, "causal")
    finally:
        hook.remove()
    ids = [ids_of(tok, t) for t in texts]
    nodes = len({tuple(i[:n]) for i in ids for n in range(1, len(i) + 1)})  # distinct prefixes
    assert seen == [(1, nodes - len(texts))]  # one trie; the three last tokens are leaves
    assert scores == pytest.approx([naive_causal(m, i) for i in ids], rel=1e-5)


def test_shared_contexts_score_only_the_continuation(tiny_run, monkeypatch):
    monkeypatch.setattr(prefix_tree, "PACK_NODES", 8)
    m, tok = tiny_run.model, tiny_run.tokenizer
    context = "the cat sat on the mat and then"
    conts = [" it ran", " it was big", " it", " a dog ran in the park"]
    scores = score_continuations(m, tok, [context] * 4 + ["a"], conts + [" dog"], "causal")
    for (ctx, cont), score in zip([(context, c) for c in conts] + [("a", " dog")], scores):
        ids = ids_of(tok, ctx) + tok.encode(cont, add_special_tokens=False).ids
        assert score == pytest.approx(naive_causal(m, ids, len(ids_of(tok, ctx))), rel=1e-5)


def test_tries_hold_every_sequence_once(toy, tiny_run):
    texts = toy.texts(30, seed=8) + toy.texts(10, seed=8)  # 10 exact duplicates
    packed = encode(tiny_run.tokenizer, texts)
    order = sorted(range(len(texts)), key=lambda i: texts[i])
    seen = set()
    nodes = 0
    tries = list(prefix_tree.build_tries(packed.flat, packed.starts, packed.lengths, order))
    assert len(tries) > 1
    for tokens, depth, parent, seq, node, pos in tries:
        nodes += len(tokens)
        body = prefix_tree.body_nodes(parent)
        assert body.sum() <= prefix_tree.PACK_NODES and parent[0] == -1
        # the leaves are exactly the nodes out of the body, and each one ends a sequence
        assert not np.isin(np.flatnonzero(~body), parent).any()
        assert set(np.flatnonzero(~body)) <= {node[seq == s][-1] for s in set(seq.tolist())}
        assert (depth[1:] == depth[parent[1:]] + 1).all()  # a child sits one below its parent
        for s in set(seq.tolist()):
            path = node[seq == s]
            ids = packed.flat[packed.starts[s] : packed.starts[s] + packed.lengths[s]]
            assert tokens[path].tolist() == ids[1:].tolist()
            assert pos[seq == s].tolist() == list(range(1, len(ids)))
            seen.add(s)
    assert seen == set(range(len(texts)))
    assert nodes < packed.lengths.sum()  # duplicates and shared prefixes are stored once
    longest = int(packed.lengths.max())
    small = list(prefix_tree.build_tries(packed.flat, packed.starts, packed.lengths, order, cap=4))
    body = [prefix_tree.body_nodes(t[2]).sum() for t in small]
    assert max(body) <= longest and len(small) > len(tries)  # the cap binds; any sequence fits


def test_a_long_prompt_is_stored_once_for_its_continuations(toy, tiny_run, monkeypatch):
    monkeypatch.setattr(prefix_tree, "PACK_NODES", 8)
    tok = tiny_run.tokenizer
    prompt = " ".join(toy.texts(4, seed=10))  # far longer than PACK_NODES
    texts = [prompt + c for c in (" the cat", " a dog ran", " it", " red and big")]
    packed = encode(tok, texts)
    tries = list(prefix_tree.build_tries(packed.flat, packed.starts, packed.lengths, range(4)))
    n_prompt = len(ids_of(tok, prompt))
    assert len(tries) == 1 and len(tries[0][0]) < n_prompt + 4 * 4  # one copy of the prompt


@pytest.mark.parametrize("padded", [False, True])
def test_readout_equals_the_full_forward(tiny_run, padded):
    m = tiny_run.model
    g = torch.Generator().manual_seed(9)
    ids = torch.randint(6, m.cfg.vocab_size, (5, 11), generator=g)
    read = torch.tensor([0, 3, 10, 5, 1])
    padding = None
    if padded:
        padding = torch.arange(11)[None] < torch.tensor([11, 7, 11, 9, 2])[:, None]
    with torch.no_grad():
        full = m(ids, causal=False, padding=padding)[torch.arange(5), read]
        assert torch.allclose(hidden_at(m, ids, padding, read), full, atol=1e-5)


@pytest.mark.parametrize("padded", [False, True])
def test_readout_with_sentences_shared_equals_the_full_forward(tiny_run, padded):
    """Copies that differ from their sentence at one or more tokens (``<mask>`` or any other),
    their first block's projection gathered from the sentences', match the full forward."""
    m = tiny_run.model
    g = torch.Generator().manual_seed(3)
    sentences = torch.randint(6, m.cfg.vocab_size, (2, 9), generator=g)
    row_sentence = torch.tensor([0, 0, 1, 1, 1])
    ids = sentences[row_sentence].clone()
    ids[0, 2] = ids[2, 4] = ids[3, 0] = MASK_ID
    ids[1, 5:7] = MASK_ID
    ids[4, 1] = 7  # a replacement that is not the mask
    read = torch.tensor([2, 5, 4, 0, 8])
    padding = None
    if padded:
        padding = torch.arange(9)[None] < torch.tensor([9, 9, 6, 6, 6])[:, None]
    with torch.no_grad():
        full = m(ids, causal=False, padding=padding)[torch.arange(5), read]
        shared = hidden_at(m, ids, padding, read, (sentences, row_sentence))
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=1e-5)
