"""The data-source seam: text through it is the token store, other modalities name their unit."""

from __future__ import annotations

import json

import pytest
import torch

from thrifty.config import load_config
from thrifty.data.budget import Ledger
from thrifty.data.prepare import prepare
from thrifty.data.source import SOURCES, open_source
from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, toy):
    folder = tmp_path_factory.mktemp("source")
    (folder / "corpus.txt").write_text("\n".join(toy.texts(200)) + "\n")
    prepare([folder / "corpus.txt"], folder / "data", budget_words=None, vocab_size=400)
    return folder / "data"


def test_text_source_serves_the_token_store_windows(dataset):
    source, store = open_source(dataset, "train"), TokenStore(dataset, "train")
    assert source.unit == "words" and source.run_files == ("tokenizer.json",)
    assert source.num_items(16) == store.num_windows(16)
    assert torch.equal(source.batch([3, 0, 5], 16)["ids"], store.windows([3, 0, 5], 16))
    assert source.units_per_token == store.words_per_token
    cfg = load_config(None, [f"data.path={dataset}"]).model
    assert source.fit(cfg).vocab_size == store.vocab_size


def test_an_unknown_modality_is_named(dataset, tmp_path):
    copy = tmp_path / "data"
    copy.mkdir()
    manifest = json.loads((dataset / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "modality": "smell"}))
    with pytest.raises(UserError, match=r"modality .smell. has no data source; known: .*\btext\b"):
        open_source(copy, "train")
    assert "text" in SOURCES.names()


def test_a_ledger_in_another_unit_says_so_and_text_ledgers_are_unchanged():
    text = Ledger(budget_words=100)
    assert "unit" not in text.to_dict()  # text ledgers are written as before the seam
    images = Ledger(budget_words=1797, prepared_words={"train": 1500, "valid": 297}, unit="images")
    again = Ledger.from_dict(images.to_dict())
    assert again.unit == "images"
    lines = "\n".join(again.summary_lines())
    assert "budget: 1,797 images" in lines and "prepared: 1,797 images" in lines
    images.words_seen = 20_000
    assert "exceed the maximum" in images.violations()[0]


def test_the_stem_is_a_registry_section():
    assert load_config(None, []).model.stem == {"name": "tokens"}
    with pytest.raises(UserError, match="unknown stem 'pixels'; choose from .*tokens"):
        load_config(None, ["model.stem=pixels"])
