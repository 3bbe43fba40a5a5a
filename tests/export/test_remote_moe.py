"""``--remote-code`` for layouts Llama lacks: the parallel block, the top-k MoE MLP and BAM's soft
mixture of attention load in transformers and compute thrifty's logits, for every model kind."""

from __future__ import annotations

import json

import pytest
import torch

from thrifty.data.tokenizer import BOS_ID
from thrifty.errors import UserError
from thrifty.export import export_hf, remote

transformers = pytest.importorskip("transformers")

OBJECTIVES = ("causal_lm", "masked_lm", "gpt_bert")
LAYOUTS = {
    "moe": {"mlp": {"name": "moe", "experts": 4, "top_k": 2}},
    "moa": {"block": {"name": "parallel"}, "attention": {"name": "moa", "experts": 3}},
    "bam": {  # BAM with KV sharing; narrower experts, raw (unnormalised) top-k weights
        "block": {"name": "parallel"},
        "attention": {"name": "moa", "experts": 2, "share_kv": True},
        "mlp": {"name": "moe", "experts": 4, "top_k": 2, "d_ff": 48, "normalize_top_k": False},
    },
}
CASES = [(objective, layout) for objective in OBJECTIVES for layout in LAYOUTS]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, toy):
    root = tmp_path_factory.mktemp("remote_moe")
    return {
        (objective, layout): toy.build_run(
            root / f"{objective}_{layout}", objective=objective, seed=seed, **LAYOUTS[layout]
        )
        for seed, (objective, layout) in enumerate(CASES)
    }


@pytest.fixture(scope="module")
def exported(runs):
    return {
        case: export_hf(run.run_dir, run.run_dir.parent / f"rc_{'_'.join(case)}", remote_code=True)
        for case, run in runs.items()
    }


def _ids(vocab: int, pad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(6, vocab, (3, 40), generator=g)
    ids[:, 0] = BOS_ID
    real = torch.ones_like(ids, dtype=torch.bool)
    if pad:
        real[1, 25:], real[2, 9:] = False, False
        ids[~real] = 0
    return ids, real


def _close(got: torch.Tensor, expected: torch.Tensor, real: torch.Tensor) -> None:
    keep = real[..., None].expand_as(got)  # outputs at padded positions are never read
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pad", [False, True])
@pytest.mark.parametrize("objective,layout", [c for c in CASES if c[0] != "causal_lm"])
def test_masked_logits_match_thrifty(runs, exported, objective, layout, pad):
    run = runs[objective, layout]
    model, info = transformers.AutoModelForMaskedLM.from_pretrained(
        exported[objective, layout], trust_remote_code=True, output_loading_info=True
    )
    assert type(model).__name__ == "ThriftyForMaskedLM"
    assert not info["missing_keys"] and not info["unexpected_keys"]  # every tensor has a home
    model.eval()
    ids, real = _ids(run.cfg.model.vocab_size, pad)
    with torch.no_grad():
        expected = run.model.logits(run.model(ids, causal=False, padding=real if pad else None))
        got = model(ids, attention_mask=real.long() if pad else None).logits
    _close(got, expected, real)


@pytest.mark.parametrize("pad", [False, True])
@pytest.mark.parametrize("objective,layout", [c for c in CASES if c[0] != "masked_lm"])
def test_causal_logits_match_thrifty(runs, exported, objective, layout, pad):
    run = runs[objective, layout]
    model = transformers.AutoModelForCausalLM.from_pretrained(
        exported[objective, layout], trust_remote_code=True
    ).eval()
    assert type(model).__name__ == "ThriftyForCausalLM"
    ids, real = _ids(run.cfg.model.vocab_size, pad)
    with torch.no_grad():  # right padding: thrifty's causal pass needs no mask
        expected = run.model.logits(run.model(ids, causal=True))
        got = model(ids, attention_mask=real.long() if pad else None).logits
    _close(got, expected, real)


def test_causal_moe_metadata_card_and_generation(runs, exported):
    run, folder = runs["causal_lm", "bam"], exported["causal_lm", "bam"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["ThriftyForCausalLM"]
    assert sorted(config["auto_map"]) == ["AutoConfig", "AutoModel", "AutoModelForCausalLM"]
    assert config["block"] == {"name": "parallel"}
    assert config["attention"] == {"name": "moa", "experts": 2, "share_kv": True}
    assert config["mlp"] == {
        "name": "moe",
        "experts": 4,
        "top_k": 2,
        "intermediate_size": 48,
        "normalize_top_k": False,
        "capacity_factor": None,
    }
    meta = json.loads((folder / "thrifty.json").read_text())
    assert meta["architecture"] == "ThriftyForCausalLM" and meta["scoring_backend"] == "causal"
    assert meta["logits"].startswith("ThriftyForCausalLM (causal)")
    card = (folder / "README.md").read_text()
    assert "AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)" in card
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    ids, _ = _ids(run.cfg.model.vocab_size, pad=False)
    prefix = ids[:1, :5]
    with torch.no_grad():
        generated = model.eval().generate(prefix, max_new_tokens=3, do_sample=False)
        for _ in range(3):  # greedy decoding with thrifty itself
            nxt = run.model.logits(run.model(prefix))[:, -1].argmax(-1, keepdim=True)
            prefix = torch.cat([prefix, nxt], dim=1)
    assert generated.tolist() == prefix.tolist()


def test_capacity_applies_at_inference_as_in_thrifty_eval(toy, tmp_path):
    """thrifty drops over-capacity assignments in eval mode too; the export does the same."""
    moe = {"name": "moe", "experts": 4, "top_k": 2, "capacity_factor": 1.0}
    run = toy.build_run(tmp_path / "capped", objective="masked_lm", seed=11, mlp=moe)
    folder = export_hf(run.run_dir, tmp_path / "rc", remote_code=True)
    model = transformers.AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
    uncapped = transformers.AutoModelForMaskedLM.from_pretrained(
        folder, trust_remote_code=True, mlp=dict(model.config.mlp, capacity_factor=None)
    )
    ids, real = _ids(run.cfg.model.vocab_size, pad=True)
    with torch.no_grad():
        expected = run.model.logits(run.model(ids, causal=False, padding=real))
        got = model.eval()(ids, attention_mask=real.long()).logits
        without = uncapped.eval()(ids, attention_mask=real.long()).logits
    _close(got, expected, real)
    assert not torch.allclose(got[real], without[real], atol=1e-3)  # tokens were dropped


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_plain_export_is_refused_naming_remote_code(runs, tmp_path, layout):
    with pytest.raises(UserError, match="--remote-code"):
        export_hf(runs["causal_lm", layout].run_dir, tmp_path / "plain")
    assert not (tmp_path / "plain").exists()


def test_dense_config_gains_only_the_layout_and_old_folders_load(toy, tmp_path):
    """A dense export's config.json only adds the Llama-layout sections, and a folder whose
    config.json lacks them (written before they existed) loads and computes the same logits."""
    run = toy.build_run(tmp_path / "dense", objective="masked_lm", seed=5)
    folder = export_hf(run.run_dir, tmp_path / "rc", remote_code=True)
    config = json.loads((folder / "config.json").read_text())
    layout = {slot: {"name": names[0]} for slot, names in remote.LAYOUT.items()}
    assert {slot: config[slot] for slot in layout} == layout
    assert list(config)[-3:] == list(layout)  # appended: the older fields keep their order
    old = {k: v for k, v in config.items() if k not in layout}
    (folder / "config.json").write_text(json.dumps(old, indent=2) + "\n")
    model = transformers.AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
    assert model.config.mlp == {"name": "swiglu"}
    ids, real = _ids(run.cfg.model.vocab_size, pad=True)
    with torch.no_grad():
        expected = run.model.logits(run.model(ids, causal=False, padding=real))
        got = model.eval()(ids, attention_mask=real.long()).logits
    _close(got, expected, real)


def test_remote_layout_is_the_modeling_code_layout():
    from thrifty.export.remote_code.configuration_thrifty import LAYOUT

    assert LAYOUT == remote.LAYOUT
