"""Edits of Python source that keep its layout: every line stays where it was, so line ``k``
of the edited text is line ``k`` of the original (what the obfuscated twins of
``thrifty.data.obfuscate`` need to be cut into pairs at any line).

An edit replaces the byte span (line0, col0)-(line1, col1), 1-based lines and UTF-8 byte
columns as ``ast`` gives them, by new bytes; the newlines of a spanned range stay. Docstrings
become blank lines (``pass`` where one was a body's only statement) and comments disappear,
with the spaces before a trailing one.
"""

from __future__ import annotations

import ast
import io
import tokenize

DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
Edit = tuple[int, int, int, int, bytes]  # (line0, col0, line1, col1, new bytes)


class ObfuscationError(ValueError):
    """A file this obfuscator cannot twin faithfully (syntax error, or a failed check)."""


def docstring_edits(tree: ast.Module, raw: list[bytes]) -> list[Edit]:
    """Edits blanking the docstrings of ``tree`` (the module, its functions and classes), whose
    source lines are ``raw``; a docstring sharing its line with code is an error."""
    edits = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, *DEFS)) or not has_docstring(node):
            continue
        doc = node.body[0]
        first, last = raw[doc.lineno - 1], raw[doc.end_lineno - 1]
        alone = not first[: doc.col_offset].strip() and not _code_after(last, doc.end_col_offset)
        sole = len(node.body) == 1
        if not (alone or sole):
            raise ObfuscationError(f"line {doc.lineno}: docstring shares its line with code")
        # its lines stay (blank), so line k of the twin is line k of the original
        new = b"pass" if sole else b""
        edits.append((doc.lineno, doc.col_offset, doc.end_lineno, doc.end_col_offset, new))
    return edits


def _code_after(line: bytes, col: int) -> bool:
    rest = line[col:].strip()
    return bool(rest) and not rest.startswith(b"#")


def has_docstring(node: ast.AST) -> bool:
    """Whether ``node``'s body starts with a string constant."""
    body = getattr(node, "body", None)
    return bool(
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )


def comment_edits(source: str, raw: list[bytes]) -> list[Edit]:
    """Edits removing every comment of ``source`` (its lines: ``raw``)."""
    edits = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.COMMENT:
                continue
            line, col = tok.start
            text = raw[line - 1]
            start = len(text.decode("utf-8")[:col].encode("utf-8"))
            end = start + len(tok.string.encode("utf-8"))
            while start > 0 and text[start - 1 : start] in (b" ", b"\t"):
                start -= 1  # the spaces before a trailing comment go too
            edits.append((line, start, line, end, b""))
    except (tokenize.TokenError, SyntaxError) as e:
        raise ObfuscationError(f"does not tokenize ({e})") from None
    return edits


def apply_edits(raw: list[bytes], edits: list[Edit]) -> str:
    """Replace each (line0, col0, line1, col1) span by its bytes; newlines of spanned lines stay."""
    starts = [0]
    for line in raw:
        starts.append(starts[-1] + len(line))
    data = b"".join(raw)
    spans = sorted((starts[a - 1] + c, starts[b - 1] + d, new) for a, c, b, d, new in edits)
    out, at = [], 0
    for start, end, new in spans:
        if start < at:
            raise ObfuscationError("overlapping edits")
        out += [data[at:start], new, b"\n" * data[start:end].count(b"\n")]
        at = end
    out.append(data[at:])
    return b"".join(out).decode("utf-8")
