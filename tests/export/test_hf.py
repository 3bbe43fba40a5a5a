"""The exported folder loads in transformers, offline, and computes thrifty's logits."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch

from thrifty.cli import export as export_cmd
from thrifty.data.tokenizer import BOS_ID
from thrifty.errors import UserError
from thrifty.export import export_hf

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def run(tmp_path_factory, toy):
    return toy.build_run(tmp_path_factory.mktemp("export") / "tiny")


@pytest.fixture(scope="module")
def exported(run):
    return export_hf(run.run_dir, run.run_dir.parent / "hf")


def test_llama_logits_match_thrifty(run, exported):
    model = transformers.AutoModelForCausalLM.from_pretrained(exported).eval()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, run.cfg.model.vocab_size, (3, 40), generator=g)
    ids[:, 0] = BOS_ID
    with torch.no_grad():
        expected = run.model.logits(run.model(ids, causal=True))
        got = model(ids).logits
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_tokenizer_matches_thrifty_with_bos(run, exported, toy):
    tok = transformers.AutoTokenizer.from_pretrained(exported)
    texts = toy.texts(5, seed=9) + ["Who should Derek hug?", "a literal <mask> here"]
    for text in texts:
        raw = run.tokenizer.encode(text, add_special_tokens=False).ids
        assert tok(text)["input_ids"] == [BOS_ID] + raw
        assert tok(text, add_special_tokens=False)["input_ids"] == raw
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 0)
    assert tok.mask_token == "<mask>"


def test_metadata_travels_with_the_model(exported):
    meta = json.loads((exported / "thrifty.json").read_text())
    assert meta["ledger"]["budget_words"] == 1000 and meta["step"] == 1
    assert meta["objective"] == {"name": "causal_lm"} and meta["scoring_backend"] == "causal"
    config = json.loads((exported / "config.json").read_text())
    assert config["tie_word_embeddings"] is True and config["model_type"] == "llama"
    assert not any(p.name.endswith(".tmp") for p in exported.parent.iterdir())


def test_refuses_to_overwrite_unless_asked(run, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        export_hf(run.run_dir, out)
    assert (out / "keep.txt").exists()
    export_hf(run.run_dir, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(os.listdir(tmp_path)) == ["hf"]  # no temp or old folders left behind


def test_export_command(run, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    export_cmd.add_parser(parser.add_subparsers())
    ckpt = run.run_dir / "checkpoints" / "step_00000001"  # a checkpoint folder works too
    args = parser.parse_args(["export", str(ckpt), "--format", "hf", "--out", str(tmp_path / "o")])
    assert args.func(args) == 0
    assert "LlamaForCausalLM" in capsys.readouterr().out
    assert (tmp_path / "o" / "tokenizer_config.json").is_file()
    with pytest.raises(UserError):
        args.func(args)


@pytest.mark.parametrize(
    "linear",
    [{"name": "lowrank", "rank": 8}, {"name": "sltrain", "rank": 8}, {"name": "monarch"}],
    ids=lambda s: s["name"],
)
def test_structured_weights_export_as_a_plain_llama(tmp_path, toy, linear):
    run = toy.build_run(tmp_path / "structured", linear=linear)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        export_hf(run.run_dir, tmp_path / "hf")
    ).eval()
    assert type(model).__name__ == "LlamaForCausalLM"
    ids = torch.randint(0, run.cfg.model.vocab_size, (2, 24), generator=torch.Generator())
    ids[:, 0] = BOS_ID
    with torch.no_grad():
        expected = run.model.logits(run.model(ids, causal=True))
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-4, rtol=1e-4)


def test_layouts_without_a_transformers_counterpart_are_refused(tmp_path, toy):
    run = toy.build_run(tmp_path / "parallel", block={"name": "parallel"})
    with pytest.raises(UserError, match="model.block=parallel .*--remote-code"):
        export_hf(run.run_dir, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
