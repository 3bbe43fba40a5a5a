"""Obfuscated twins of Python files: identifiers renamed to ``v1``/``f1``/``c1`` placeholders.

ObscuraCoder (Paul et al. 2025, ``papers/obscuracoder.md``) pairs code with a copy whose
identifiers are uninformative, consistently within a file; DOBF (Lachaux et al. 2021) asks the
model for the name map. This module makes the twin from Python's ``ast``:

- **What is renamed:** every name the file binds (assignment and ``for``/``with``/``except``/
  ``match`` targets, ``global``/``nonlocal``, function arguments, ``def`` and ``class`` names),
  everywhere it occurs as a name. Functions become ``f{i}``, classes ``c{i}``, everything else
  ``v{i}``, numbered in the order the file binds them, skipping numbers the file already uses.
- **What is not:** builtins; imported names; attribute names (``x.attr``), and so every name
  bound in a class body (methods and class attributes are reached as attributes); names used as
  call keywords anywhere in the file (``f(key=...)`` names the callee's parameter); dunder
  names; type parameters. Strings that name things (``__all__``, ``getattr``) are left as they
  are, so behaviour is kept except where code looks names up by string.
- **Layout:** the twin keeps every line: renaming edits names in place; stripped comments and
  docstrings leave blank lines (``pass`` where a docstring was a body's only statement). So
  line ``k`` of the twin is line ``k`` of the original, which lets pairs be cut at any line.
- **Checks:** the twin must parse, compile, and give the same ``ast.dump`` as the original with
  names mapped (and docstrings removed when stripped); anything else raises
  ``ObfuscationError``, so the caller skips the file and counts it. Positions come from
  ``ast`` (UTF-8 byte columns); comments from ``tokenize``; the layout-keeping edits are
  ``thrifty.data.source_edits``.
"""

from __future__ import annotations

import ast
import builtins
import re
import warnings
from dataclasses import dataclass

from thrifty.data.source_edits import (
    DEFS,
    Edit,
    ObfuscationError,
    apply_edits,
    comment_edits,
    docstring_edits,
    has_docstring,
)

__all__ = ["Obfuscated", "ObfuscationError", "Rename", "normalised_dump", "obfuscate"]

_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class Rename:
    """One renamed occurrence: 1-based line, UTF-8 byte columns, the original name."""

    line: int
    start: int
    end: int
    name: str


@dataclass(frozen=True)
class Obfuscated:
    """A file's twin, its name map (placeholder -> original, in placeholder order) and the
    renamed occurrences (positions in the original, which are also the twin's lines)."""

    text: str
    mapping: dict[str, str]
    renames: tuple[Rename, ...]

    @property
    def inverse(self) -> dict[str, str]:
        """original -> placeholder."""
        return {name: ph for ph, name in self.mapping.items()}


def obfuscate(
    source: str, *, strip_docstrings: bool = True, strip_comments: bool = True
) -> Obfuscated:
    """The obfuscated twin of the Python file ``source`` (module docstring)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:  # ValueError: null bytes
        raise ObfuscationError(f"does not parse ({e.__class__.__name__}: {e})") from None
    lines = source.splitlines(keepends=True)
    scan = _Scan(tree)
    placeholder = _placeholders(scan, source)
    raw = [line.encode("utf-8") for line in lines]
    edits: list[Edit] = []
    renames = []
    for line, col, name in scan.positions(raw, placeholder):
        end = col + len(name.encode("utf-8"))
        if raw[line - 1][col:end] != name.encode("utf-8"):
            raise ObfuscationError(f"line {line}: {name!r} is not where ast places it")
        edits.append((line, col, line, end, placeholder[name].encode()))
        renames.append(Rename(line, col, end, name))
    if strip_docstrings:
        edits += docstring_edits(tree, raw)
    if strip_comments:
        edits += comment_edits(source, raw)
    text = apply_edits(raw, edits)
    mapping = dict(sorted(((p, n) for n, p in placeholder.items()), key=_placeholder_order))
    _check(tree, text, placeholder, strip_docstrings)
    return Obfuscated(text, mapping, tuple(sorted(renames, key=lambda r: (r.line, r.start))))


def _placeholder_order(item: tuple[str, str]) -> tuple[int, str, int]:
    ph = item[0]
    return ("vfc".index(ph[0]), ph[0], int(ph[1:]))


class _Scan(ast.NodeVisitor):
    """Names the file binds, what it must not rename, and each name's kind."""

    def __init__(self, tree: ast.Module) -> None:
        self.bound: dict[str, None] = {}  # in order of binding
        self.excluded: set[str] = set(_BUILTINS)
        self.kind: dict[str, str] = {}
        self.tree = tree
        self._class_depth = [False]
        self.visit(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg:
                self.excluded.add(node.arg)

    def rename(self) -> list[str]:
        return [n for n in self.bound if n not in self.excluded and not _dunder(n)]

    def _bind(self, name: str, kind: str = "v") -> None:
        if self._class_depth[-1]:
            self.excluded.add(name)  # a class attribute, reached as an attribute
        self.bound.setdefault(name)
        old = self.kind.get(name, "v")
        self.kind[name] = kind if "vfc".index(kind) > "vfc".index(old) else old  # c > f > v

    def _scope(self, node: ast.AST, in_class: bool) -> None:
        self._class_depth.append(in_class)
        self.generic_visit(node)
        self._class_depth.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._bind(node.name, "f")
        for item in (*node.decorator_list, *node.args.defaults, *node.args.kw_defaults):
            if item is not None:
                self.visit(item)
        for tp in getattr(node, "type_params", []):
            self.excluded.add(getattr(tp, "name", ""))
        self._class_depth.append(False)
        self.visit(node.args)
        if node.returns:
            self.visit(node.returns)
        for stmt in node.body:
            self.visit(stmt)
        self._class_depth.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name, "c")
        for item in (*node.decorator_list, *node.bases, *node.keywords):
            self.visit(item)
        for tp in getattr(node, "type_params", []):
            self.excluded.add(getattr(tp, "name", ""))
        self._class_depth.append(True)
        for stmt in node.body:
            self.visit(stmt)
        self._class_depth.pop()

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scope(node, False)

    def visit_ListComp(self, node: ast.AST) -> None:
        self._scope(node, False)

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp

    def visit_arg(self, node: ast.arg) -> None:
        self._class_depth.append(False)
        self._bind(node.arg)
        self._class_depth.pop()
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._bind(node.id)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            self.excluded.add(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        for name in node.names:
            self._bind(name)

    visit_Nonlocal = visit_Global

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._bind(node.rest)
        self.generic_visit(node)

    def positions(
        self, raw: list[bytes], placeholder: dict[str, str]
    ) -> list[tuple[int, int, str]]:
        """(line, byte column, name) of every occurrence to rename."""
        found = []
        for node in ast.walk(self.tree):
            for line, col, name in _occurrences(node, raw):
                if name in placeholder:
                    found.append((line, col, name))
        return sorted(set(found))


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _occurrences(node: ast.AST, raw: list[bytes]) -> list[tuple[int, int, str]]:
    """Where ``node`` writes identifiers the renamer handles: (line, byte column, name)."""
    if isinstance(node, ast.Name):
        return [(node.lineno, node.col_offset, node.id)]
    if isinstance(node, ast.arg):
        return [(node.lineno, node.col_offset, node.arg)]
    if isinstance(node, DEFS):
        keyword = rb"class\s+" if isinstance(node, ast.ClassDef) else rb"(?:async\s+)?def\s+"
        m = re.compile(keyword + re.escape(node.name.encode())).match(
            raw[node.lineno - 1], node.col_offset
        )
        if m is None:
            raise ObfuscationError(f"line {node.lineno}: cannot place {node.name!r}")
        return [(node.lineno, m.end() - len(node.name.encode()), node.name)]
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        skip = len("global" if isinstance(node, ast.Global) else "nonlocal")
        return [_word(raw, node, name, node.col_offset + skip, first=True) for name in node.names]
    if isinstance(node, ast.ExceptHandler) and node.name:  # "except E as name:" on its line
        end = (
            len(raw[node.lineno - 1])
            if node.body[0].lineno > node.lineno
            else node.body[0].col_offset
        )
        return [_word(raw, node, node.name, node.col_offset, end=end)]
    if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
        return [_word(raw, node, node.name, node.col_offset)]
    if isinstance(node, ast.MatchMapping) and node.rest:
        return [_word(raw, node, node.rest, node.col_offset)]
    return []


def _word(
    raw: list[bytes], node: ast.AST, name: str, start: int, end: int | None = None, first=False
) -> tuple[int, int, str]:
    """(line, column, name) of ``name`` as a whole word on ``node``'s single line, between
    ``start`` and ``end`` (default: the node's end): the first or the last such place."""
    if end is None:
        if node.end_lineno != node.lineno:
            raise ObfuscationError(f"line {node.lineno}: {name!r} bound over several lines")
        end = node.end_col_offset
    pattern = re.compile(rb"(?<![\w.])" + re.escape(name.encode()) + rb"(?!\w)")
    found = list(pattern.finditer(raw[node.lineno - 1][:end], start))
    if not found:
        raise ObfuscationError(f"line {node.lineno}: cannot place {name!r}")
    return (node.lineno, found[0 if first else -1].start(), name)


def _placeholders(scan: _Scan, source: str) -> dict[str, str]:
    """original -> placeholder, numbered per kind in order of binding, avoiding names in use."""
    taken = set(re.findall(r"\b[vfc]\d+\b", source))
    counters = {"v": 0, "f": 0, "c": 0}
    out = {}
    for name in scan.rename():
        kind = scan.kind.get(name, "v")
        while True:
            counters[kind] += 1
            candidate = f"{kind}{counters[kind]}"
            if candidate not in taken:
                break
        out[name] = candidate
    return out


class _Normalise(ast.NodeTransformer):
    """The original tree as the twin should parse: names mapped, docstrings removed."""

    def __init__(self, placeholder: dict[str, str], strip_docstrings: bool) -> None:
        self.p, self.strip = placeholder, strip_docstrings

    def _n(self, name: str | None) -> str | None:
        return self.p.get(name, name) if name else name

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if self.strip and isinstance(node, (ast.Module, *DEFS)) and has_docstring(node):
            node.body = node.body[1:] or [ast.Pass()]
        super().generic_visit(node)
        if isinstance(node, ast.Name):
            node.id = self._n(node.id)
        elif isinstance(node, ast.arg):
            node.arg = self._n(node.arg)
        elif isinstance(node, DEFS):
            node.name = self._n(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            node.names = [self._n(n) for n in node.names]
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
            node.name = self._n(node.name)
        elif isinstance(node, ast.MatchMapping):
            node.rest = self._n(node.rest)
        return node


def normalised_dump(tree: ast.AST, placeholder: dict[str, str], strip_docstrings: bool) -> str:
    """``ast.dump`` of ``tree`` with names mapped by ``placeholder`` (original -> placeholder)
    and, when ``strip_docstrings``, docstrings removed (an emptied body holds ``pass``)."""
    return ast.dump(_Normalise(placeholder, strip_docstrings).visit(tree))


def _check(tree: ast.Module, text: str, placeholder: dict[str, str], strip: bool) -> None:
    try:
        with warnings.catch_warnings():  # the original's SyntaxWarnings are not ours to print
            warnings.simplefilter("ignore")
            twin = ast.parse(text)
            compile(text, "<twin>", "exec")
    except (SyntaxError, ValueError) as e:
        raise ObfuscationError(f"the twin does not compile ({e})") from None
    if ast.dump(twin) != normalised_dump(tree, placeholder, strip):
        raise ObfuscationError("the twin's ast differs from the original's beyond names")
