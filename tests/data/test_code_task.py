import random
from pathlib import Path

import pytest

from thrifty.cli.main import main
from thrifty.data.budget import Ledger
from thrifty.data.code_corpus import python_paths, read_code
from thrifty.data.code_task import prepare_code, units
from thrifty.data.obfuscate import ObfuscationError
from thrifty.data.tokenizer import BOS_ID, PAD_ID, SEP_ID, load_tokenizer
from thrifty.data.tokens import TokenStore

NAMES = "alpha beta gamma delta total count item value index result".split()
N = 64  # window length the datasets are packed for


def write_corpus(folder, files=40, seed=0):
    rng = random.Random(seed)
    for i in range(files):
        lines = [f'"""Module {i}."""', "import os", ""]
        for k in range(rng.randint(2, 4)):
            fn, arg, acc = rng.sample(NAMES, 3)
            lines += [f"def {fn}_{k}({arg}, limit={k}):", '    """Sum things."""',
                      f"    {acc} = 0  # running", f"    for x in {arg}[:limit]:",
                      f"        {acc} += len(str(x))", f"    return {acc}", ""]  # fmt: skip
        lines += ["class Box:", "    size = 2", "", "    def grow(self, amount):",
                  "        self.size += amount", "        return os.sep, self.size"]  # fmt: skip
        (folder / f"mod{i:02d}.py").write_text("\n".join(lines))
    (folder / "broken.py").write_text("def broken(:\n")
    return folder


@pytest.fixture(scope="module")
def arms(tmp_path_factory):
    corpus = write_corpus(tmp_path_factory.mktemp("code"))
    out = tmp_path_factory.mktemp("arms")
    plain = prepare_code(corpus, out / "plain", fmt="plain", seq_len=N, vocab_size=400,
                         valid_fraction=0.2)  # fmt: skip
    made = {"plain": plain}
    for fmt in ("grounded", "dobf"):
        made[fmt] = prepare_code(corpus, out / fmt, fmt=fmt, ratio=0.3, seq_len=N,
                                 valid_fraction=0.2,
                                 tokenizer_path=out / "plain" / "tokenizer.json")  # fmt: skip
    return out, made


def documents(store):
    offsets = store.doc_offsets()
    return [(int(a), store.tokens[a:b].tolist()) for a, b in zip(offsets, offsets[1:])]


def test_the_ledger_charges_each_file_once_and_lists_the_twins_as_derived(arms):
    _, made = arms
    charged = {fmt: Ledger.from_dict(m["ledger"]).charged_words() for fmt, m in made.items()}
    assert charged["plain"] == charged["grounded"] == charged["dobf"]
    plain = made["plain"]
    assert charged["plain"] == plain["words"]["train"] + plain["words"]["valid"]
    for fmt in ("grounded", "dobf"):
        ledger = Ledger.from_dict(made[fmt]["ledger"])
        extra = made[fmt]["words"]["train"] - plain["words"]["train"]
        assert extra > 0 and sum(ledger.derived_words.values()) == extra
        assert ledger.tokenizer_words() == 0  # the plain arm's, trained on charged text
        assert ledger.max_epochs == pytest.approx(10 / 3)
        assert any("derived:" in line for line in ledger.summary_lines())
    assert set(made["grounded"]["ledger"]["derived_words"]) == {"obfuscation", "pair copy"}
    assert set(made["dobf"]["ledger"]["derived_words"]) == {"obfuscation"}
    assert Ledger.from_dict(plain["ledger"]).max_epochs == 10
    for m in made.values():
        task = m["code_task"]
        assert [s["path"] for s in task["skipped"]] == ["broken.py"]
        assert len(m["ledger"]["sources"]) == 40 and all(
            len(s["sha256"]) == 64 for s in m["ledger"]["sources"]
        )


def test_pairs_sit_inside_one_window_and_make_up_the_ratio(arms):
    out, made = arms
    for fmt in ("grounded", "dobf"):
        store = TokenStore(out / fmt, "train")
        pairs = 0
        for start, ids in documents(store):
            pad = ids.count(PAD_ID)
            assert ids[len(ids) - pad :] == [PAD_ID] * pad  # padding only ends a document
            if SEP_ID in ids:
                pairs += 1
                end = start + len(ids) - pad
                assert ids.count(SEP_ID) == 1 and start // N == (end - 1) // N
        tokens = made[fmt]["code_task"]["tokens"]
        assert pairs == made[fmt]["code_task"]["units"]["paired"] > 0
        share = tokens["pairs"] / (tokens["plain"] + tokens["pairs"])
        assert 0.3 <= share < 0.45
        assert tokens["plain"] + tokens["pairs"] + tokens["pad"] == len(store)


def test_pairs_are_units_of_the_files_in_both_directions_and_validation_is_shared(arms):
    out, made = arms
    tok = load_tokenizer(out / "plain")
    root = Path(made["plain"]["code_task"]["root"])
    known = set()
    for path in python_paths(root):
        try:
            code = read_code(path, root)
        except ObfuscationError:
            continue
        known |= {(u.obf_text, u.orig_text) for u in units(code, tok, N)[0]}
    directions = set()
    for _, ids in documents(TokenStore(out / "grounded", "train")):
        if SEP_ID in ids:
            k = ids.index(SEP_ID)
            a, b = tok.decode(ids[1:k]), tok.decode([i for i in ids[k + 1 :] if i != PAD_ID])
            assert (a, b) in known or (b, a) in known
            directions.add((a, b) in known)
    assert directions == {True, False}
    valid = {fmt: TokenStore(out / fmt, "valid").tokens.tolist() for fmt in made}
    assert valid["plain"] == valid["grounded"] == valid["dobf"] and BOS_ID in valid["plain"]


def test_bad_settings_exit_2_and_write_nothing(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    corpus = write_corpus(tmp_path / "c", files=3)
    out = tmp_path / "out"
    assert main(["code-task", str(corpus), "--out", str(out), "--format", "grounded",
                 "--ratio", "1.5"]) == 2  # fmt: skip
    assert main(["code-task", str(corpus), "--out", str(out), "--format", "pairs"]) == 2
    assert main(["code-task", str(tmp_path / "none"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--ratio 1.5" in err and "--format 'pairs'" in err and "no such folder" in err
    assert not list(tmp_path.glob("out*"))


def test_prepare_reads_python_files_as_a_py_source(tmp_path):
    from thrifty.data.prepare import prepare

    (tmp_path / "c").mkdir()
    corpus = write_corpus(tmp_path / "c", 5)
    manifest = prepare([f"py:{corpus}"], tmp_path / "out", budget_words=None, vocab_size=300,
                       valid_fraction=0.0, progress=False)  # fmt: skip
    sources = manifest["ledger"]["sources"]
    assert len(sources) == 6 and all(s["words_used"] == s["words_total"] for s in sources)
    tok = load_tokenizer(tmp_path / "out")
    text = tok.decode(TokenStore(tmp_path / "out", "train").tokens.tolist())
    assert '"""Module 0."""\nimport os\n\ndef ' in text  # a file's lines stay lines
    (corpus / "latin.py").write_bytes(b"x = '\xe9'\n")  # not UTF-8, no coding line
    assert main(["prepare", f"py:{corpus}", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
