"""``--remote-code``: masked and hybrid models load in transformers with trust_remote_code and
compute thrifty's logits; without the flag no code is written."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from thrifty.cli import export as export_cmd
from thrifty.data.tokenizer import BOS_ID, MASK_ID
from thrifty.errors import UserError
from thrifty.eval.scoring import score_sentences
from thrifty.export import export_hf

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, toy):
    root = tmp_path_factory.mktemp("remote")
    # Different seeds: the two runs must not pass by sharing weights.
    return {
        name: toy.build_run(root / name, objective=name, seed=seed)
        for seed, name in enumerate(("masked_lm", "gpt_bert", "causal_lm"))
    }


@pytest.fixture(scope="module")
def exported(runs):
    return {
        name: export_hf(run.run_dir, run.run_dir.parent / f"rc_{name}", remote_code=True)
        for name, run in runs.items()
        if name != "causal_lm"
    }


def _ids(vocab: int, pad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(6, vocab, (3, 40), generator=g)
    ids[:, 0] = BOS_ID
    real = torch.ones_like(ids, dtype=torch.bool)
    if pad:
        real[1, 25:], real[2, 9:] = False, False
        ids[~real] = 0
    return ids, real


@pytest.mark.parametrize("name", ["masked_lm", "gpt_bert"])
@pytest.mark.parametrize("pad", [False, True])
def test_masked_lm_logits_match_thrifty_bidirectional(runs, exported, name, pad):
    run = runs[name]
    model = transformers.AutoModelForMaskedLM.from_pretrained(
        exported[name], trust_remote_code=True
    ).eval()
    assert type(model).__name__ == "ThriftyForMaskedLM"
    ids, real = _ids(run.cfg.model.vocab_size, pad)
    with torch.no_grad():
        expected = run.model.logits(run.model(ids, causal=False, padding=real if pad else None))
        got = model(ids, attention_mask=real.long() if pad else None).logits
        causal = run.model.logits(run.model(ids, causal=True))
    assert got.dtype == torch.float32
    keep = real[..., None].expand_as(got)  # outputs at padded positions are never read
    # fp32 rounding: thrifty's CPU RMSNorm sums the squares in another order than F.rms_norm
    torch.testing.assert_close(got[keep], expected[keep], atol=5e-5, rtol=1e-5)
    assert not torch.allclose(got[keep], causal[keep], atol=1e-3)  # really bidirectional


def test_gpt_bert_also_loads_as_causal_lm(runs, exported):
    run = runs["gpt_bert"]
    model = transformers.AutoModelForCausalLM.from_pretrained(
        exported["gpt_bert"], trust_remote_code=True
    ).eval()
    assert type(model).__name__ == "ThriftyForCausalLM"
    ids, _ = _ids(run.cfg.model.vocab_size)
    with torch.no_grad():
        expected = run.model.logits(run.model(ids, causal=True))
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-5, rtol=1e-5)
        generated = model.generate(ids[:1, :5], max_new_tokens=3, do_sample=False)
        prefix = ids[:1, :5]
        for _ in range(3):  # greedy decoding with thrifty itself
            nxt = run.model.logits(run.model(prefix))[:, -1].argmax(-1, keepdim=True)
            prefix = torch.cat([prefix, nxt], dim=1)
    assert generated.tolist() == prefix.tolist()


def test_masked_lm_is_not_a_causal_lm(exported):
    config = json.loads((exported["masked_lm"] / "config.json").read_text())
    assert "AutoModelForCausalLM" not in config["auto_map"]
    with pytest.raises(ValueError):
        transformers.AutoModelForCausalLM.from_pretrained(
            exported["masked_lm"], trust_remote_code=True
        )


@pytest.mark.parametrize("name,backend,offset", [("masked_lm", "mlm", 0), ("gpt_bert", "mntp", 1)])
def test_documented_logits_give_thrifty_pll(runs, exported, name, backend, offset):
    """Mask token t and read logits at t - offset (as thrifty.json says): the sum over t is
    thrifty's own pseudo-log-likelihood with the matching backend."""
    run = runs[name]
    meta = json.loads((exported[name] / "thrifty.json").read_text())
    assert meta["mask_prediction_offset"] == offset and meta["scoring_backend"] == backend
    assert f"read position t{'-1' if offset else ''} " in meta["logits"]
    model = transformers.AutoModelForMaskedLM.from_pretrained(
        exported[name], trust_remote_code=True
    ).eval()
    tok = transformers.AutoTokenizer.from_pretrained(exported[name], trust_remote_code=True)
    text = "the cat sat on the mat tourists"
    ids = torch.tensor(tok(text)["input_ids"])
    copies = ids.repeat(len(ids) - 1, 1)
    positions = torch.arange(1, len(ids))  # <s> is never masked
    copies[positions - 1, positions] = MASK_ID
    with torch.no_grad():
        logp = model(copies).logits.log_softmax(-1)
    pll = logp[positions - 1, positions - offset, ids[positions]].sum().item()
    expected = score_sentences(run.model, run.tokenizer, [text], backend)[0]
    assert pll == pytest.approx(expected, abs=1e-4)


def test_labels_loss_uses_the_offset(runs, exported):
    run = runs["gpt_bert"]
    model = transformers.AutoModelForMaskedLM.from_pretrained(
        exported["gpt_bert"], trust_remote_code=True
    ).eval()
    ids, _ = _ids(run.cfg.model.vocab_size)
    labels = torch.full_like(ids, -100)
    labels[:, 7] = ids[:, 7]
    masked = ids.clone()
    masked[:, 7] = MASK_ID
    with torch.no_grad():
        out = model(masked, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits[:, 6], ids[:, 7])
    torch.testing.assert_close(out.loss, expected)


def test_metadata_and_card(exported):
    folder = exported["gpt_bert"]
    meta = json.loads((folder / "thrifty.json").read_text())
    assert meta["remote_code"] is True and meta["architecture"] == "ThriftyForMaskedLM"
    assert set(meta["auto_classes"]) >= {"AutoModelForMaskedLM", "AutoModelForCausalLM"}
    card = (folder / "README.md").read_text()
    assert "trust_remote_code=True" in card and "position t-1" in card
    assert "1,000" in card  # the ledger's budget travels with the model


def test_without_the_flag_no_code_is_written(runs, tmp_path):
    with pytest.raises(UserError, match="--remote-code"):
        export_hf(runs["masked_lm"].run_dir, tmp_path / "mlm")
    assert not (tmp_path / "mlm").exists()
    out = export_hf(runs["gpt_bert"].run_dir, tmp_path / "gptbert")  # causal mode only
    assert not list(out.glob("*.py"))
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "auto_map" not in config
    meta = json.loads((out / "thrifty.json").read_text())
    assert meta["remote_code"] is False and meta["logits"].startswith("LlamaForCausalLM")
    with pytest.raises(UserError, match="without custom code"):
        export_hf(runs["causal_lm"].run_dir, tmp_path / "causal", remote_code=True)


def test_discriminator_exports_its_backbone_only(toy, tmp_path):
    run = toy.build_run(tmp_path / "electra", objective="electra", seed=3)
    with pytest.raises(UserError, match="--remote-code"):
        export_hf(run.run_dir, tmp_path / "plain")
    out = export_hf(run.run_dir, tmp_path / "rc_electra", remote_code=True)
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["auto_map"]) == ["AutoConfig", "AutoModel"]
    model = transformers.AutoModel.from_pretrained(out, trust_remote_code=True).eval()
    ids, real = _ids(run.cfg.model.vocab_size, pad=True)
    with torch.no_grad():
        expected = run.model(ids, causal=False, padding=real)
        got = model(ids, attention_mask=real.long()).last_hidden_state
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
    assert "no language-model head" in (out / "README.md").read_text()


def test_export_command_flag(runs, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    export_cmd.add_parser(parser.add_subparsers())
    run_dir = str(runs["gpt_bert"].run_dir)
    args = parser.parse_args(["export", run_dir, "--out", str(tmp_path / "a"), "--remote-code"])
    assert args.func(args) == 0
    assert "trust_remote_code=True" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "a").glob("*.py")) == [
        "configuration_thrifty.py",
        "layers_thrifty.py",
        "modeling_thrifty.py",
    ]
    args = parser.parse_args(["export", run_dir, "--out", str(tmp_path / "b")])
    assert args.func(args) == 0
    assert "--remote-code" in capsys.readouterr().out
    assert not list((tmp_path / "b").glob("*.py"))
