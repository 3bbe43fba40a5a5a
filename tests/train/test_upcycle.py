"""Upcycling dense specialists into a mixture (BTX, BAM; papers/bam.md): the card's invariants,
the weight mapping, the ledger, a continuation through the training loop, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from thrifty.cli.main import main
from thrifty.config import load_config, to_dict
from thrifty.data.budget import Ledger
from thrifty.data.prepare import prepare
from thrifty.data.tokenizer import train_tokenizer
from thrifty.runs import latest_checkpoint, load_model, read_config
from thrifty.train.loop import train
from thrifty.train.upcycle import upcycle

PEAK = "train.peak_flops=1e11"  # measuring the CPU's matmul peak costs seconds per run
METHODS = ("btx", "bam", "bam-kv")
PARALLEL = {"block": {"name": "parallel"}}


def hidden(run, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_model(run).model(ids)


def ids_for(run) -> torch.Tensor:
    vocab = load_model(run).cfg.model.vocab_size
    return torch.randint(0, vocab, (2, 24), generator=torch.Generator().manual_seed(0))


def weights(run) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(run) / "model.safetensors"))


# ---- the card's invariants


@pytest.mark.parametrize("block", ["parallel", "sequential"])
@pytest.mark.parametrize("method", METHODS)
def test_one_specialist_gives_back_the_dense_model(toy, tmp_path, method, block):
    # soft routing over one attention expert and top-1 over one FFN expert both weigh it 1
    dense = toy.build_run(tmp_path / "dense", block={"name": block}).run_dir
    out = upcycle(dense, [dense], tmp_path / "moe", method=method, top_k=1)
    ids = ids_for(dense)
    assert torch.allclose(hidden(out, ids), hidden(dense, ids), rtol=0, atol=1e-6)
    assert read_config(latest_checkpoint(out)).model.block == {"name": block}  # layout kept


@pytest.mark.parametrize("method", METHODS)
def test_identical_specialists_give_the_dense_output_for_any_router(toy, tmp_path, method):
    dense = toy.build_run(tmp_path / "dense", **PARALLEL).run_dir
    out = upcycle(dense, [dense] * 3, tmp_path / "moe", method=method, top_k=2)
    mixture = load_model(out).model
    gen = torch.Generator().manual_seed(1)
    routers = [p for name, p in mixture.named_parameters() if name.endswith("router.weight")]
    assert len(routers) == (2 if method == "btx" else 4)  # 2 layers: FFN (+ attention) routers
    with torch.no_grad():
        for p in routers:  # far from the fresh init: routing now matters, if anything does
            p.copy_(torch.randn(p.shape, generator=gen) * 3.0)
        ids = ids_for(dense)
        assert torch.allclose(mixture(ids), hidden(dense, ids), rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_experts_are_the_specialists_and_the_rest_their_mean(toy, tmp_path, method):
    a = toy.build_run(tmp_path / "a", seed=0, **PARALLEL).run_dir
    b = toy.build_run(tmp_path / "b", seed=1, **PARALLEL).run_dir
    out = upcycle(a, [a, b], tmp_path / "moe", method=method, seed=3)
    wa, wb, w = weights(a), weights(b), weights(out)
    specialists, d = [wa, wb], 64

    def mean(key):
        return (wa[key] + wb[key]) / 2

    for key in ("embed.weight", "norm.weight", "blocks.0.norm.weight", "blocks.1.norm.weight"):
        assert torch.allclose(w[key], mean(key), rtol=0, atol=1e-7), key
    for layer in range(2):
        block = f"blocks.{layer}"
        for i, s in enumerate(specialists):
            for part in ("gate_up", "down"):
                expert = f"{block}.mlp.experts.{i}.{part}.weight"
                assert torch.equal(w[expert], s[f"{block}.mlp.{part}.weight"]), expert
        qkv, attn_out = f"{block}.attn.qkv.weight", f"{block}.attn.out.weight"
        if method == "btx":
            assert torch.allclose(w[qkv], mean(qkv), rtol=0, atol=1e-7)
            assert torch.allclose(w[attn_out], mean(attn_out), rtol=0, atol=1e-7)
        for i, s in enumerate(specialists):
            if method == "bam":
                assert torch.equal(w[f"{block}.attn.experts.{i}.qkv.weight"], s[qkv])
            if method == "bam-kv":
                assert torch.equal(w[f"{block}.attn.experts.{i}.q.weight"], s[qkv][:d])
            if method != "btx":
                assert torch.equal(w[f"{block}.attn.experts.{i}.out.weight"], s[attn_out])
        if method == "bam-kv":
            kv = (wa[qkv][d:] + wb[qkv][d:]) / 2
            assert torch.allclose(w[f"{block}.attn.kv.weight"], kv, rtol=0, atol=1e-7)
        assert w[f"{block}.mlp.router.weight"].shape == (2, d)
    model = read_config(latest_checkpoint(out)).model
    assert model.mlp["name"] == "moe" and model.mlp["experts"] == 2 and model.mlp["top_k"] == 2
    assert model.attention["name"] == ("mha" if method == "btx" else "moa")
    assert model.attention.get("share_kv", False) == (method == "bam-kv")
    # the routers come from --seed: the same seed draws them again, another does not
    again = weights(upcycle(a, [a, b], tmp_path / "again", method=method, seed=3))
    other = weights(upcycle(a, [a, b], tmp_path / "other", method=method, seed=4))
    router = "blocks.0.mlp.router.weight"
    assert torch.equal(again[router], w[router]) and not torch.equal(other[router], w[router])


# ---- trained runs: the ledger, the audit, and a continuation


@pytest.fixture(scope="module")
def family(tiny_data, tmp_path_factory, toy):
    """A parallel-block seed (3 steps) and two specialists continued from it (2 steps each),
    one on the seed's data with another data order, one on new text in the seed's tokenizer."""
    root = tmp_path_factory.mktemp("family")
    nano = Path(__file__).parents[2] / "configs" / "nano.yaml"

    def cfg(*overrides):
        common = [f"data.path={tiny_data}", f"runs_dir={root / 'runs'}", "train.threads=1", PEAK]
        return load_config(nano, [*common, "model.block=parallel", "train.eval_every=0",
                                  *overrides])  # fmt: skip

    seed = cfg("name=seed", "train.max_steps=3")
    train(seed)
    (root / "new.txt").write_text("\n".join(toy.texts(300, seed=7)) + "\n")
    other = root / "other-data"
    prepare([str(root / "new.txt")], other, budget_words=None, valid_fraction=0.1,
            tokenizer_path=seed.run_dir / "tokenizer.json", progress=False)  # fmt: skip
    init = f"train.init_from={seed.run_dir}"
    a = cfg("name=a", "train.max_steps=2", "train.seed=1", init)
    b = cfg("name=b", "train.max_steps=2", f"data.path={other}", init)
    train(a)
    train(b)
    return SimpleNamespace(
        root=root, data=tiny_data, seed=seed.run_dir, a=a.run_dir, b=b.run_dir, other=other
    )


def test_ledger_charges_each_specialist_and_the_seed_once(family, tmp_path, capsys):
    out = upcycle(family.seed, [family.a, family.b], tmp_path / "bam", method="bam")
    seed, a, b = (Ledger.load(r) for r in (family.seed, family.a, family.b))
    ledger = Ledger.load(out)
    # a continued on the seed's own data: nothing new to pay; b read new text
    assert seed.charged_words() > 0 and a.charged_words() == seed.charged_words()
    assert b.charged_words() > seed.charged_words()
    own = a.charged_words() + b.charged_words() - 2 * seed.charged_words()
    assert ledger.charged_words() == seed.charged_words() + own
    assert ledger.overlap_words == seed.charged_words() and ledger.words_seen == 0
    assert [m["name"] for m in ledger.aux_models] == [
        f"specialist {latest_checkpoint(r)}" for r in (family.a, family.b)
    ]
    # the seed's passes reach the mixture once; each specialist's own passes once each
    names = [e["name"] for e in ledger.exposure]
    assert sum(n.endswith("start model " + str(latest_checkpoint(family.seed)) + ": training data")
               for n in names) == 1  # fmt: skip
    assert sum(n.endswith(": training data") and "start model" not in n for n in names) == 2
    # a and the seed read the same file, so their passes add up; b read only its own
    assert ledger.max_passes()[0] == pytest.approx(max(a.epochs + seed.epochs, b.epochs))
    assert load_model(out).ledger() == ledger.to_dict()  # the checkpoint carries it too
    assert main(["audit", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ok: within the budget" in printed
    for run in (family.a, family.b):
        assert f"auxiliary model specialist {latest_checkpoint(run)}" in printed
    # a specialist given twice is one expert twice, and its words are charged once
    twice = Ledger.load(upcycle(family.seed, [family.a, family.a], tmp_path / "aa", method="btx"))
    assert twice.charged_words() == a.charged_words()
    # the seed as an expert of its own: its words and passes still count once
    mixed = Ledger.load(
        upcycle(family.seed, [family.seed, family.a], tmp_path / "sa", method="btx")
    )
    assert mixed.charged_words() == a.charged_words()
    assert sum(e["passes"] == seed.epochs for e in mixed.exposure) == 1


def test_continuing_the_mixture_trains_it_with_its_model_section(family, tmp_path, capsys):
    out = tmp_path / "mix"
    argv = ["upcycle", str(family.seed), str(family.a), str(family.b), "--out", str(out)]
    assert main([*argv, "--method", "bam-kv", "--top-k", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    info = json.loads((out / "upcycle.json").read_text())
    assert info["method"] == "bam-kv" and len(info["experts"]) == 2
    assert read_config(out).train.init_from == str(out)  # the written config is the recipe
    args = [str(out / "config.yaml"), "name=cont", f"data.path={family.data}", "train.max_steps=2"]
    assert main(["train", *args, f"train.init_from={out}", "train.threads=1", PEAK]) == 0
    cont = out.parent / "cont"
    assert to_dict(read_config(cont).model) == to_dict(read_config(out).model)
    rows = [json.loads(x) for x in (cont / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2 and all(r["loss"] == r["loss"] for r in rows if "loss" in r)
    ledger = Ledger.load(cont)
    (start,) = [m for m in ledger.aux_models if m["name"].startswith("start model")]
    assert start["words"] == Ledger.load(out).charged_words()
    # the seed's data, training and validation split alike, is inside the mixture's charge
    assert ledger.charged_words() == start["words"]
    assert main(["audit", str(cont)]) == 0
    assert main([*argv, "--method", "bam"]) == 2  # exists: refused
    assert "already exists" in capsys.readouterr().err


# ---- bad input: one line naming the difference, exit 2, nothing written


def _other_tokenizer(toy, run: Path) -> Path:
    train_tokenizer(toy.texts(300, seed=5), vocab_size=400).save(str(run / "tokenizer.json"))
    return run


@pytest.mark.parametrize(
    "case, expected",
    [
        ("tokenizer", "uses another tokenizer than the seed"),
        ("width", "model.d_model: 64 vs 32"),
        ("layout", "model.block: {'name': 'parallel'} vs {'name': 'sequential'}"),
        ("objective", "objective: causal_lm vs masked_lm"),
        ("moe", "is already a mixture (model.mlp: moe)"),
        ("moa", "is already a mixture (model.attention: moa)"),
        ("none", "give at least one specialist run"),
        ("method", "unknown upcycling method 'bmx' (did you mean 'btx'?)"),
        ("top_k", "--top-k 3 must be between 1 and the number of experts, 2"),
        ("out", "is one of the input runs"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(toy, tmp_path, capsys, case, expected):
    seed = toy.build_run(tmp_path / "seed", **PARALLEL).run_dir
    good = toy.build_run(tmp_path / "good", seed=1, **PARALLEL).run_dir
    odd = {
        "tokenizer": lambda: _other_tokenizer(toy, Path(shutil.copytree(good, tmp_path / "t"))),
        "width": lambda: toy.build_run(tmp_path / "w", d_model=32, **PARALLEL).run_dir,
        "layout": lambda: toy.build_run(tmp_path / "l").run_dir,
        "objective": lambda: toy.build_run(tmp_path / "o", "masked_lm", **PARALLEL).run_dir,
        "moe": lambda: toy.build_run(tmp_path / "e", mlp={"name": "moe", "experts": 2}).run_dir,
        "moa": lambda: toy.build_run(tmp_path / "a", attention={"name": "moa"}).run_dir,
    }
    runs = [str(good), str(odd[case]())] if case in odd else [str(good), str(good)]
    runs = [] if case == "none" else runs
    out = good if case == "out" else tmp_path / "out"
    options = ["--method", "bmx" if case == "method" else "bam", "--out", str(out)]
    options += ["--top-k", "3" if case == "top_k" else "2"]
    options += ["--overwrite"] if case == "out" else []  # even so, never over an input
    argv = ["upcycle", str(seed), *runs, *options]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err, err
    assert not list(tmp_path.glob(".*.tmp"))
    assert (out / "checkpoints").is_dir() if case == "out" else not out.exists()
