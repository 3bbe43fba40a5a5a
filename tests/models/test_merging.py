"""ToMe token merging on the ViT path (thrifty.models.merging): the card's three invariants
(papers/simvlg.md), merging off is the old computation, FLOPs on the shrinking sequence, the
progressive schedule, and the one-line error for a merge rate the tokens cannot give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from thrifty.cli.main import main
from thrifty.config import ModelConfig
from thrifty.errors import UserError
from thrifty.models.attention import ATTENTIONS
from thrifty.models.merging import (
    MergeConfig,
    bipartite_merge,
    merge_rate,
    merged_blocks,
)
from thrifty.models.rope import rope_tables
from thrifty.models.stem.patches import mean_features
from thrifty.models.transformer import Transformer
from thrifty.runs import latest_checkpoint

CONFIG = str(Path(__file__).parents[2] / "configs" / "mae-digits.yaml")


def vit(merge: dict | None = None, n_layers: int = 3, d_model: int = 32, **extra) -> Transformer:
    stem = {"name": "patches", "patch_size": 2, "image_size": 8, "channels": 1}
    if merge is not None:
        stem["merge"] = merge
    torch.manual_seed(0)
    cfg = ModelConfig(
        d_model=d_model, n_layers=n_layers, n_heads=2, max_seq_len=64, stem=stem, **extra
    )
    return Transformer(cfg)


@pytest.mark.parametrize("T", [15, 16])
@pytest.mark.parametrize("r", [1, 3, 7])
def test_merging_r_tokens_removes_exactly_r(T, r):
    x = torch.randn(2, T, 8)
    merged = bipartite_merge(x, torch.ones(2, T), x, r)
    assert merged.x.shape == (2, T - r, 8) and merged.size.shape == (2, T - r)
    assert torch.equal(merged.size.sum(1), torch.full((2,), float(T)))
    # every old token went to a place of the new sequence, and each new place holds some
    assert merged.into.min() >= 0 and merged.into.max() == T - r - 1
    assert all(len(row.unique()) == T - r for row in merged.into)


def test_size_weighted_sum_is_invariant_and_identical_tokens_keep_the_mean():
    x, size = torch.randn(3, 12, 8), torch.randint(1, 4, (3, 12)).float()
    merged = bipartite_merge(x, size, x, 5)
    before = (size[..., None] * x).sum(1)
    after = (merged.size[..., None] * merged.x).sum(1)
    torch.testing.assert_close(after, before)
    # identical pairs merge first (cosine 1) and the unmerged states are the tokens themselves
    tokens = torch.randn(2, 6, 8).repeat_interleave(2, dim=1)  # (2, 12): pairs at (2i, 2i+1)
    merged = bipartite_merge(tokens, torch.ones(2, 12), tokens, 6)
    assert torch.equal(merged.size, torch.full((2, 6), 2.0))
    spread = merged.x.gather(1, merged.into[..., None].expand(-1, -1, 8))
    torch.testing.assert_close(spread, tokens)
    torch.testing.assert_close(spread.mean(1), tokens.mean(1))


@pytest.mark.parametrize("attention", ["mha", "moa"])
def test_proportional_attention_equals_the_duplicated_tokens(attention):
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=32)
    attn = ATTENTIONS.build({"name": attention}, cfg)
    attn.reset_parameters(0.3, 0.3)
    cos, sin = rope_tables(8, 32, 10000.0)
    x = torch.randn(1, 5, 16)
    sizes = torch.tensor([1, 3, 2, 1, 4])
    pos = torch.tensor([0, 4, 9, 2, 7])  # a duplicate sits at its original's position
    dup = torch.arange(5).repeat_interleave(sizes)  # token i, sizes[i] times
    bias = sizes.float().log()[None, None, None, :]  # (1, 1, 1, T): log(size) per key
    merged = attn(x, cos[pos][None, None], sin[pos][None, None], False, bias)
    brute = attn(x[:, dup], cos[pos[dup]][None, None], sin[pos[dup]][None, None], False, None)
    torch.testing.assert_close(merged[:, dup], brute, atol=1e-6, rtol=1e-5)
    unweighted = attn(x, cos[pos][None, None], sin[pos][None, None], False, None)
    assert not torch.allclose(unweighted[:, dup], brute, atol=1e-4)


def test_merged_blocks_equal_the_full_pass_over_duplicated_tokens():
    """Invariant (iii) through the blocks: 4 slot pairs hold a token twice (one position), 4 hold
    two different tokens; merging the 4 duplicates after block 0 and attending with log(size)
    gives every token the state the unmerged pass gives it."""
    model = vit(n_layers=2)
    C = model.cfg.d_model
    torch.manual_seed(1)
    u = torch.randn(1, 12, C)
    order = [0, 0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9, 10, 11]  # duplicates at (0,1) (4,5) ...
    x = u[:, order]
    pos = torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9, 10, 11])
    cos, sin = model.rope_cos[pos][None, None], model.rope_sin[pos][None, None]
    with torch.no_grad():
        full = x
        for block in model.blocks:
            full = block(full, cos, sin, False, None)
        merged = merged_blocks(model.blocks, x, cos, sin, False, None, 4)
    torch.testing.assert_close(merged, full, atol=1e-5, rtol=1e-4)


def test_merging_off_is_the_previous_computation():
    images = torch.rand(3, 1, 8, 8)
    plain = vit()
    with torch.no_grad():
        x = plain.embed(images)
        for block in plain.blocks:  # the loop forward ran before merging existed
            x = block(x, plain.rope_cos[:16], plain.rope_sin[:16], False, None, images)
        reference = plain.norm(x)
        assert torch.equal(plain(images, causal=False), reference)
        off = vit({"r": 0})
        assert torch.equal(off(images, causal=False, progress=0.5), reference)
        ramp = vit({"r": 2, "schedule": "progressive"})  # r(0) = 0: nothing merged yet
        assert torch.equal(ramp(images, causal=False, progress=0.0), reference)
        assert not torch.allclose(ramp(images, causal=False), reference)
    assert off.flops_per_token(16) == plain.flops_per_token(16)
    text = Transformer(ModelConfig(size="nano", vocab_size=300, max_seq_len=32))
    ids = torch.randint(0, 300, (2, 16))
    assert torch.equal(text(ids, progress=0.3), text(ids))


def test_merged_features_are_finite_and_differ_from_unmerged():
    images = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        merged = mean_features(vit({"r": 4}), images)
        plain = mean_features(vit(), images)
    assert merged.shape == plain.shape and torch.isfinite(merged).all()
    assert not torch.allclose(merged, plain)


def test_progressive_schedule_grows_from_zero_to_r():
    ramp, flat = MergeConfig(r=4, schedule="progressive"), MergeConfig(r=4)
    rates = [merge_rate(ramp, p) for p in (0.0, 0.19, 0.2, 0.5, 0.79, 0.8, 0.99, 1.0)]
    assert rates == [0, 0, 1, 2, 3, 4, 4, 4]
    assert merge_rate(ramp, None) == 4 and merge_rate(flat, 0.0) == 4
    assert merge_rate(None, 0.5) == 0


def test_flops_count_the_shrinking_sequence_by_hand():
    # d=16, 2 heads, d_ff=32, 3 sequential mha+swiglu blocks, 16 patches of 2x2x1, r=4
    model = vit({"r": 4}, d_model=16, d_ff=32)
    # per block at T tokens: 6·(qkv 16·48 + out 16·16 + gate_up 16·64 + down 32·16) + 12·T·16
    block = lambda t: 6.0 * (768 + 256 + 1024 + 512) + 192.0 * t  # noqa: E731
    blocks = (block(16) * 16 + block(12) * 12 + block(8) * 8) / 16  # T_l = 16, 12, 8
    matching = (2 * 8 * 8 * 16 + 2 * 6 * 6 * 16) / 16  # |A|·|B| before blocks 1 and 2
    stem = 6.0 * 4 * 16
    assert model.flops_per_token(16) == blocks + matching + stem == 40712.0
    plain = vit(d_model=16, d_ff=32)
    assert plain.flops_per_token(16) == 3 * block(16) + stem > model.flops_per_token(16)
    # progressive: each of r = 0..4 is trained for an equal share
    ramp = vit({"r": 4, "schedule": "progressive"}, d_model=16, d_ff=32)
    each = [vit({"r": r}, d_model=16, d_ff=32).flops_per_token(16) for r in range(1, 5)]
    expected = (plain.flops_per_token(16) + sum(each)) / 5
    assert ramp.flops_per_token(16) == pytest.approx(expected)


def test_a_merge_rate_the_tokens_cannot_give_is_one_user_error():
    with pytest.raises(UserError, match=r"^model\.stem\.merge\.r=6 .*r <= 5$"):
        vit({"r": 6})  # 3 blocks over 16 patches: 3·6 > 16
    model = vit({"r": 5})
    with pytest.raises(UserError, match=r"model\.stem\.merge\.r=5"):  # MAE's 8 visible patches
        model(torch.rand(1, 1, 8, 8), causal=False, keep=torch.arange(8)[None])
    with pytest.raises(UserError, match="model.stem.merge needs model.attention"):
        vit({"r": 2}, attention={"name": "meta"})


def test_mae_with_progressive_merging_trains_audits_and_probes(tmp_path, capsys):
    data = tmp_path / "digits"
    assert main(["prepare", "images:digits", "--out", str(data), "--quiet"]) == 0
    common = [CONFIG, f"data.path={data}", f"runs_dir={tmp_path / 'runs'}", "train.threads=1",
              "train.max_steps=4", "train.eval_every=4", "train.eval_batches=1",
              "model.n_layers=2", "train.peak_flops=1e11"]  # fmt: skip
    merge = ["model.stem.merge.r=2", "model.stem.merge.schedule=progressive"]
    assert main(["train", *common, *merge, "name=tome"]) == 0
    assert main(["train", *common, "name=plain"]) == 0
    capsys.readouterr()
    assert main(["audit", str(tmp_path / "runs" / "tome")]) == 0
    states = {
        name: json.loads((latest_checkpoint(tmp_path / "runs" / name) / "state.json").read_text())
        for name in ("tome", "plain")
    }
    assert states["tome"]["flops_per_token"] < states["plain"]["flops_per_token"]
    out = tmp_path / "probe.json"
    assert main(["probe", str(tmp_path / "runs" / "tome"), "--sizes", "20", "--seeds", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    assert 0.1 < json.loads(out.read_text())["arms"]["pretrained"]["linear"]["test"] <= 1.0
    capsys.readouterr()
    # MAE's encoder reads 4 visible patches: 2 blocks can merge at most 2 of them
    assert main(["train", *common, "model.stem.merge.r=3", "name=bad"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model.stem.merge.r=3 ")
