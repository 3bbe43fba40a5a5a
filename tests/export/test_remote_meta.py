"""``--remote-code`` for meta-attention (with RoPE extension): transformers computes thrifty's
logits on text with meta-tokens, and on text without them."""

from __future__ import annotations

import json

import pytest
import torch

from thrifty.data.tokenizer import BOS_ID, META_ID
from thrifty.errors import UserError
from thrifty.export import export_hf

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("queries", ["all", "meta"])
def test_meta_attention_exports_with_rope_scaling(toy, tmp_path, queries):
    run = toy.build_run(
        tmp_path / "meta",
        objective="meta_lm",
        attention={"name": "meta", "queries": queries},
        rope_scaling="yarn",
        rope_factor=2.0,
    )
    with pytest.raises(UserError, match="model.attention=meta .*--remote-code"):
        export_hf(run.run_dir, tmp_path / "plain")
    folder = export_hf(run.run_dir, tmp_path / "rc", remote_code=True)
    config = json.loads((folder / "config.json").read_text())
    assert config["attention"] == {"name": "meta", "queries": queries, "rope": True}
    assert config["rope_extension"]["rope_type"] == "yarn"
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        folder, trust_remote_code=True, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    model.eval()
    ids = torch.randint(6, run.cfg.model.vocab_size, (2, 64), generator=torch.Generator())
    ids[:, 0] = BOS_ID
    plain = ids.clone()
    ids[:, 7::9] = META_ID
    with torch.no_grad():
        for x in (ids, plain):
            expected = run.model.logits(run.model(x, causal=True))
            torch.testing.assert_close(model(x).logits, expected, atol=1e-4, rtol=1e-4)
