import ast
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from thrifty.data.obfuscate import ObfuscationError, normalised_dump, obfuscate

SOURCE = '''"""Module doc."""
import os
from sys import path as p

class Counter:
    """A counter."""
    limit = 3  # a class attribute

    def bump(self, step=1, *args, **kw):
        self.count = step  # attribute
        total = sum(args) + len(p)
        def helper(x):
            nonlocal total
            total += x
            return f"{x}!{total}"
        for i, item in enumerate(args):
            helper(item)
        try:
            os.stat(p[0])
        except OSError as err:
            print(err, v1)
        return total

def main(argv):
    c = Counter()
    c.bump(step=2)
    return [v for v in argv if v], c.limit
'''


def test_names_are_renamed_consistently_and_the_ast_matches_up_to_names():
    twin = obfuscate(SOURCE)
    inverse = twin.inverse
    assert inverse["Counter"].startswith("c") and inverse["main"].startswith("f")
    assert inverse["helper"].startswith("f") and inverse["total"].startswith("v")
    assert "v1" not in twin.mapping  # the file already uses the name v1
    for name in ("self", "args", "kw", "x", "i", "item", "err", "argv", "c", "v"):
        assert name in inverse, name
    tree = ast.parse(twin.text)
    assert ast.dump(tree) == normalised_dump(ast.parse(SOURCE), inverse, True)
    compile(twin.text, "twin", "exec")
    assert f"nonlocal {inverse['total']}" in twin.text
    assert f'f"{{{inverse["x"]}}}!{{{inverse["total"]}}}"' in twin.text  # inside the f-string


def test_builtins_imports_attributes_keywords_and_class_attributes_are_untouched():
    twin = obfuscate(SOURCE)
    for kept in ("os", "p", "print", "sum", "len", "OSError", "enumerate", "limit", "bump",
                 "step", "count"):  # fmt: skip
        assert kept not in twin.inverse, kept
    assert ".count = step" in twin.text and "c.limit" not in twin.text  # c is renamed
    assert f"{twin.inverse['c']}.limit" in twin.text and "bump(step=2)" in twin.text


def test_docstrings_and_comments_go_optionally_and_every_line_stays():
    stripped = obfuscate(SOURCE)
    assert "Module doc" not in stripped.text and "#" not in stripped.text
    assert len(stripped.text.splitlines()) == len(SOURCE.splitlines())
    kept = obfuscate(SOURCE, strip_docstrings=False, strip_comments=False)
    assert '"""A counter."""' in kept.text and "# a class attribute" in kept.text
    assert ast.dump(ast.parse(kept.text)) == normalised_dump(ast.parse(SOURCE), kept.inverse, False)
    only_doc = obfuscate('def f(a):\n    """Doc."""\n')
    assert only_doc.text.splitlines()[1].strip() == "pass"  # the body keeps a statement


def test_a_file_that_does_not_parse_is_an_obfuscation_error():
    with pytest.raises(ObfuscationError, match="does not parse"):
        obfuscate("def broken(:\n    pass\n")


def test_stdlib_files_round_trip():
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(root.glob("*.py"))
    pick = np.random.default_rng(0).choice(len(paths), size=12, replace=False)
    done = 0
    for i in pick:
        source = paths[i].read_text(encoding="utf-8")
        try:
            twin = obfuscate(source)
        except ObfuscationError:
            continue
        done += 1
        assert len(twin.text.splitlines()) == len(source.splitlines())
        tree = ast.parse(twin.text)
        assert ast.dump(tree) == normalised_dump(ast.parse(source), twin.inverse, True)
        assert set(twin.mapping.values()).isdisjoint({"print", "len", "os", "sys"})
    assert done >= 10
