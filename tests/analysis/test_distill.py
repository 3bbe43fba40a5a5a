"""Distillation data: the cached decoder matches the full forward pass, sampling is seeded,
synthetic text has exactly the words asked for, and the real:synthetic mix keeps the real
validation split and charges the teacher (not the synthetic words) in its ledger."""

import json
import shutil

import pytest
import torch

from thrifty.analysis.distill import build_mix, parse_ratio, write_synthetic
from thrifty.analysis.sampling import Decoder, sample_streams, split_documents
from thrifty.cli.main import main
from thrifty.config import ModelConfig
from thrifty.data.budget import Ledger
from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer


@pytest.fixture(scope="module")
def teacher(toy, tmp_path_factory):
    """A nano run and a dataset prepared with its tokenizer; the run's ledger says it was
    trained on exactly that dataset."""
    from thrifty.data.prepare import prepare

    root = tmp_path_factory.mktemp("distill")
    run = toy.build_run(root / "teacher", seed=0)
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "toy.train").write_text("\n".join(toy.texts(300, seed=4)) + "\n")
    data = root / "real"
    manifest = prepare(
        [str(corpus)],
        data,
        budget_words=None,
        tokenizer_path=run.run_dir / "tokenizer.json",
        tokenizer_words=sum(len(t.split()) for t in toy.texts()),  # what build_run trained on
        valid_fraction=0.1,
        progress=False,
    )
    (run.run_dir / "ledger.json").write_text(json.dumps(manifest["ledger"]))
    return run, data


def test_cached_decoding_matches_the_full_forward_pass():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=97, max_seq_len=16)).eval()
    ids = torch.randint(0, 97, (3, 12))
    with torch.no_grad():
        full = model.logits(model(ids))  # (B, T, V)
    decoder = Decoder(model, batch=3, max_len=12)
    steps = torch.stack([decoder.step(ids[:, t]) for t in range(12)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)


def test_sampling_is_seeded_and_an_ensemble_of_copies_samples_like_one_member():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(size="nano", vocab_size=97, max_seq_len=16)).eval()

    def draw(members):
        return sample_streams(members, 4, 10, generator=torch.Generator().manual_seed(3))

    one = draw([model])
    assert one.shape == (4, 10) and (one[:, 0] == 1).all()  # every stream starts with <s>
    assert torch.equal(one, draw([model]))
    assert torch.equal(one, draw([model, model]))  # (z + z) / 2 == z exactly
    assert split_documents([1, 7, 8, 1, 9, 0, 1]) == [[7, 8], [9]]


def test_synthetic_text_and_the_mix(teacher, tmp_path):
    run, real = teacher
    synth = tmp_path / "synth"
    info = write_synthetic([run.run_dir], synth, words=2000, seed=1, batch=64, seq_len=32)
    lines = (synth / "synthetic.txt").read_text().splitlines()
    assert info["words"] == 2000 == sum(len(line.split()) for line in lines)
    assert all(line.strip() for line in lines)
    assert info["teachers"][0]["run"] == str(run.run_dir) and info["temperature"] == 1.0

    real_manifest = json.loads((real / "manifest.json").read_text())
    real_words = real_manifest["words"]["train"]
    mix = tmp_path / "mix"
    manifest = build_mix(real, synth, mix, ratio=parse_ratio("1:1"))
    assert manifest["words"]["train"] == 2 * real_words
    assert (mix / "valid.bin").read_bytes() == (real / "valid.bin").read_bytes()
    store = TokenStore(mix, "train")
    assert len(store) == manifest["tokens"]["train"] and store.doc_offsets()[-1] == len(store)
    head = (real / "train.bin").read_bytes()
    assert (mix / "train.bin").read_bytes()[: len(head)] == head

    ledger = Ledger.from_dict(manifest["ledger"])
    real_ledger = Ledger.from_dict(real_manifest["ledger"])
    assert ledger.synthetic_words == real_words
    assert ledger.charged_words() == real_ledger.charged_words()  # teacher's words = real words
    assert ledger.aux_models[0]["words"] == 0 and "teacher (teacher" in ledger.aux_models[0]["name"]
    assert ledger.violations() == []

    # a teacher trained on other words: they are charged in full
    other = tmp_path / "other_teacher"
    shutil.copytree(run.run_dir, other)
    other_ledger = {**real_manifest["ledger"], "seed": 99, "prepared_words": {"train": 777}}
    (other / "ledger.json").write_text(json.dumps(other_ledger))
    write_synthetic([other], tmp_path / "s2", words=real_words // 2 + 5, batch=64, seq_len=32)
    half = build_mix(real, tmp_path / "s2", tmp_path / "mix2", ratio=parse_ratio("2:1"))
    charged = Ledger.from_dict(half["ledger"])
    assert charged.aux_models[0]["words"] == 777
    assert charged.charged_words() == real_ledger.charged_words() + 777


def test_mix_errors(teacher, tmp_path):
    run, real = teacher
    write_synthetic([run.run_dir], tmp_path / "s", words=50, batch=4, seq_len=16)
    with pytest.raises(UserError, match="sample more"):
        build_mix(real, tmp_path / "s", tmp_path / "mix", ratio=1.0)
    with pytest.raises(UserError, match="REAL:SYNTHETIC"):
        parse_ratio("half")
    with pytest.raises(UserError, match="already exists"):
        write_synthetic([run.run_dir], tmp_path / "s", words=50)


def test_student_trains_on_the_mix_with_the_normal_command(teacher, tmp_path, capsys):
    run, real = teacher
    synth, mix = tmp_path / "synth", tmp_path / "mix"
    argv = ["distill-data", str(run.run_dir), "--words", "2k", "--out", str(synth)]
    assert main([*argv, "--batch", "64", "--seq-len", "32"]) == 0
    assert main(["distill-mix", str(real), str(synth), "--out", str(mix), "--ratio", "1:1"]) == 0
    assert "synthetic" in capsys.readouterr().out
    nano = str(__import__("pathlib").Path(__file__).parents[2] / "configs" / "nano.yaml")
    argv = ["train", nano, f"data.path={mix}", f"runs_dir={tmp_path / 'runs'}", "name=student"]
    assert main([*argv, "train.max_steps=2", "train.threads=1", "train.peak_flops=1e11"]) == 0
    assert main(["audit", str(tmp_path / "runs" / "student")]) == 0


def test_the_mix_carries_the_teachers_passes_over_the_real_words(teacher, tmp_path):
    run, real = teacher
    real_ledger = json.loads((real / "manifest.json").read_text())["ledger"]
    train_words = real_ledger["prepared_words"]["train"]
    taught = tmp_path / "taught"
    shutil.copytree(run.run_dir, taught)
    (taught / "ledger.json").write_text(json.dumps(real_ledger | {"words_seen": 3.0 * train_words}))
    write_synthetic([taught], tmp_path / "s", words=train_words, batch=64, seq_len=32)
    ledger = Ledger.from_dict(build_mix(real, tmp_path / "s", tmp_path / "mix")["ledger"])
    (entry,) = ledger.exposure
    assert entry["name"] == "distillation teacher taught: training data"
    assert entry["passes"] == pytest.approx(3.0) and entry["words"] == train_words
    assert entry["sources"] == sorted(s["sha256"] for s in real_ledger["sources"])
    # a student making 7.5 passes over the mix sees each real word 10.5 times in all
    ledger.words_seen = 7.5 * ledger.train_words
    (problem,) = ledger.violations()
    assert "10.500 epochs exceed the maximum of 10" in problem
    assert "distillation teacher taught: training data" in problem
