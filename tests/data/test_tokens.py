"""The tokenizer (fixed special ids, no <unk>, fingerprint) and the memory-mapped token store."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from thrifty.data.prepare import prepare
from thrifty.data.tokenizer import (
    BOS_ID,
    MASK_ID,
    NUM_SPECIAL,
    SPECIAL_TOKENS,
    load_tokenizer,
    tokenizer_sha256,
    train_tokenizer,
)
from thrifty.data.tokens import TokenStore, TokenWriter
from thrifty.errors import UserError

TEXTS = ["the quick brown fox jumps over the lazy dog", "a dog is not a fox", "hello there"] * 20


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tokens")
    rng = random.Random(1)
    words = ["ab", "cd", "efg", "hij", "klmn", "op", "q"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 30))) for _ in range(200)]
    (folder / "text.txt").write_text("\n".join(lines), encoding="utf-8")
    out = folder / "prepared"
    prepare([str(folder / "text.txt")], out, budget_words=None, vocab_size=300, progress=False)
    return out


def test_special_tokens_have_fixed_ids() -> None:
    tok = train_tokenizer(TEXTS, vocab_size=300)
    assert SPECIAL_TOKENS == ("<pad>", "<s>", "</s>", "<mask>", "<cls>", "<sep>")
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(NUM_SPECIAL))
    assert tok.get_vocab_size() <= 300


def test_any_text_encodes_without_unk_and_round_trips() -> None:
    tok = train_tokenizer(TEXTS, vocab_size=300)
    text = "Zürich ☃ 🤖 \x00\t tabs  and  spaces\n"
    ids = tok.encode(text).ids
    assert min(ids) >= NUM_SPECIAL  # never falls back to a special token
    assert tok.decode(ids) == text
    assert tok.encode("fox").ids[0] != BOS_ID  # no post-processor adds BOS


def test_literal_special_token_text_stays_text(tmp_path: Path) -> None:
    tok = train_tokenizer(TEXTS, vocab_size=300)
    tok.save(str(tmp_path / "tokenizer.json"))
    for loaded in (tok, load_tokenizer(tmp_path)):
        ids = loaded.encode("see <mask> and <s>").ids
        assert MASK_ID not in ids and BOS_ID not in ids


def test_fingerprint_survives_save_and_load(tmp_path: Path) -> None:
    tok = train_tokenizer(TEXTS, vocab_size=300)
    tok.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert tokenizer_sha256(loaded) == tokenizer_sha256(tok)
    assert tokenizer_sha256(train_tokenizer(TEXTS, vocab_size=290)) != tokenizer_sha256(tok)


def test_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="vocab_size 100 is too small"):
        train_tokenizer(TEXTS, vocab_size=100)
    with pytest.raises(UserError, match="no tokenizer file"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(UserError, match="not a Hugging Face tokenizer"):
        load_tokenizer(tmp_path)


def test_store_windows_share_one_boundary_token(dataset: Path) -> None:
    store = TokenStore(dataset, "train")
    tokens = np.fromfile(dataset / "train.bin", dtype=store.manifest["dtype"])
    assert len(store) == len(tokens) == store.manifest["tokens"]["train"]
    seq = 16
    n = store.num_windows(seq)
    assert n == (len(tokens) - 1) // seq
    assert (store.window(0, seq) == tokens[: seq + 1]).all()
    assert store.window(1, seq)[0] == store.window(0, seq)[-1]
    batch = store.windows([n - 1, 0, 3], seq)
    assert batch.dtype == torch.int64 and batch.shape == (3, seq + 1)
    assert batch[1].tolist() == tokens[: seq + 1].tolist()
    assert batch[0].tolist() == tokens[(n - 1) * seq : n * seq + 1].tolist()
    with pytest.raises(IndexError):
        store.window(n, seq)
    with pytest.raises(IndexError):
        store.windows([0, n], seq)


def test_store_knows_documents_and_words_per_token(dataset: Path) -> None:
    store = TokenStore(dataset, "train")
    offsets = store.doc_offsets()
    assert offsets[-1] == len(store)
    assert (store.tokens[offsets[:-1]] == BOS_ID).all()
    manifest = store.manifest
    assert store.words_per_token == manifest["words"]["train"] / manifest["tokens"]["train"]
    assert store.vocab_size == manifest["vocab_size"]


def test_too_short_split_names_folder_and_numbers(dataset: Path) -> None:
    store = TokenStore(dataset, "valid")
    too_long = len(store)
    with pytest.raises(UserError, match=rf"prepared: valid split has {too_long:,} tokens"):
        store.num_windows(too_long)
    assert store.num_windows(too_long - 1) == 1
    with pytest.raises(UserError, match="split 'test' is not one of train, valid"):
        TokenStore(dataset, "test")


def test_truncated_bin_is_caught(dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in dataset.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "train.bin").write_bytes((dataset / "train.bin").read_bytes()[:-4])
    with pytest.raises(UserError, match="train.bin: holds"):
        TokenStore(broken, "train")


def test_writer_uses_uint32_for_big_vocabularies(tmp_path: Path) -> None:
    with TokenWriter(tmp_path, vocab_size=70_000) as writer:
        writer.add("train", [[69_999, 7], [65_536]])
        counts = writer.close()
    assert counts == {
        "dtype": "uint32",
        "tokens": {"train": 5, "valid": 0},
        "documents": {"train": 2, "valid": 0},
    }
    assert np.fromfile(tmp_path / "train.bin", dtype=np.uint32).tolist() == [
        BOS_ID, 69_999, 7, BOS_ID, 65_536,
    ]  # fmt: skip
    assert np.fromfile(tmp_path / "docs.idx", dtype="<i8").tolist() == [0, 3, 5]
    assert np.fromfile(tmp_path / "valid.idx", dtype="<i8").tolist() == [0]
