"""The modular-arithmetic task: every equation written and right, a clean seeded split, numbers
as single tokens, and bad settings refused before anything is written."""

from __future__ import annotations

import pytest

from thrifty.cli.main import main
from thrifty.data.modular import (
    OPERATIONS,
    check_task,
    equations,
    equations_path,
    parse_equation,
    prepare_modular,
    write_equations,
)
from thrifty.data.tokenizer import load_tokenizer
from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError
from thrifty.eval.equations import store_equations


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("modular") / "add-11"
    prepare_modular(out, modulus=11, operation="add", train_fraction=0.3, seed=1)
    return out


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_equation_is_written_and_right(tmp_path, operation):
    p = 7
    path = tmp_path / "eq.txt"
    n = write_equations(path, p, operation)
    lines = path.read_text().splitlines()
    found = [parse_equation(line) for line in lines]
    pairs = {(e.a, e.b) for e in found}
    expected = p * (p - 1) if operation == "div" else p * p  # no division by 0
    assert n == len(lines) == len(pairs) == expected
    for e in found:
        assert 0 <= e.c < p and e.op == OPERATIONS[operation][0]
        assert {
            "add": (e.a + e.b - e.c) % p == 0,
            "sub": (e.c + e.b - e.a) % p == 0,
            "mul": (e.a * e.b - e.c) % p == 0,
            "div": (e.c * e.b - e.a) % p == 0,
        }[operation]


def test_split_is_the_train_fraction_disjoint_and_complete(dataset):
    tokenizer = load_tokenizer(dataset)
    train = store_equations(TokenStore(dataset, "train"), tokenizer)
    valid = store_equations(TokenStore(dataset, "valid"), tokenizer)
    assert abs(len(train) - 0.3 * 121) <= 1
    assert not set(train) & set(valid)
    assert set(train) | set(valid) == set(equations(11, "add"))
    # the ledger's source is the equations file beside the dataset, fingerprinted
    sources = TokenStore(dataset, "train").manifest["ledger"]["sources"]
    assert [s["path"] for s in sources] == [str(equations_path(dataset))]


def test_the_split_follows_the_seed(tmp_path):
    splits = []
    for seed in (0, 1):
        out = tmp_path / f"s{seed}"
        prepare_modular(out, modulus=5, train_fraction=0.5, seed=seed)
        splits.append(store_equations(TokenStore(out, "valid"), load_tokenizer(out)))
    assert set(splits[0]) != set(splits[1])


def test_every_number_is_one_token(dataset):
    tokenizer = load_tokenizer(dataset)
    for n in range(11):  # a first operand has no space before it; b and c have one
        assert len(tokenizer.encode(str(n)).ids) == 1, n
        assert len(tokenizer.encode(f" {n}").ids) == 1, n
    # so "<s> a + b = c" is 6 tokens, one window of seq_len 6 (configs/grokking-moe.yaml)
    store = TokenStore(dataset, "valid")
    assert set((store.doc_offsets()[1:] - store.doc_offsets()[:-1]).tolist()) == {6}


@pytest.mark.parametrize(
    "modulus, operation, fraction",
    [(1, "add", 0.5), (7, "pow", 0.5), (12, "div", 0.5), (7, "add", 0.0), (7, "add", 1.0)],
)
def test_bad_settings_are_refused(modulus, operation, fraction):
    with pytest.raises(UserError):
        check_task(modulus, operation, fraction)


@pytest.mark.parametrize(
    "args, named",
    [
        (["--modulus", "1"], "--modulus 1"),
        (["--operation", "pow"], "--operation pow"),
        (["--train-fraction", "1.5"], "--train-fraction 1.5"),
        (["--train-fraction", "0"], "--train-fraction 0"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, named):
    code = main(["grokking-task", *args, "--out", str(tmp_path / "task")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and named in err
    assert list(tmp_path.iterdir()) == []


def test_cli_prepares_the_task(tmp_path, capsys):
    out = tmp_path / "task"
    assert main(["grokking-task", "--modulus", "5", "--seed", "3", "--out", str(out)]) == 0
    assert (out / "manifest.json").is_file() and equations_path(out).is_file()
    docs = TokenStore(out, "train").manifest["documents"]
    assert docs["train"] + docs["valid"] == 25
    # a second time refuses to replace it unless asked
    assert main(["grokking-task", "--modulus", "5", "--out", str(out)]) == 2
    assert main(["grokking-task", "--modulus", "5", "--out", str(out), "--overwrite"]) == 0
