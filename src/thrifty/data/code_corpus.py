"""A corpus of Python files: read, fingerprint, count, twin, and split into train / held out.

The code corpus of the ObscuraCoder recipe (Paul et al. 2025, ``papers/obscuracoder.md``): every
``*.py`` file under a folder (hidden folders, ``site-packages`` and ``dist-packages`` left out),
each file one document. The Python standard library that ships with the interpreter is a real
offline corpus of millions of words (``STDLIB``); its version goes on the ledger with every
file's sha256. Words are counted the BabyLM way (``len(text.split())``).

A file that cannot be decoded (PEP 263 encoding declaration, UTF-8 by default), does not parse,
or whose obfuscated twin fails its checks (``thrifty.data.obfuscate``) is skipped and counted,
never fatal. The held-out split is a seeded hash of each file's path relative to the root, so a
file is held out or not whatever else is in the corpus, and every arm of a comparison holds out
the same files.
"""

from __future__ import annotations

import hashlib
import io
import platform
import sysconfig
import tokenize
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrifty.data.corpus import count_words
from thrifty.data.obfuscate import Obfuscated, ObfuscationError, obfuscate
from thrifty.errors import UserError

STDLIB = "stdlib"
"""A corpus folder spelled this way means this interpreter's standard library."""
_LEFT_OUT = {"site-packages", "dist-packages", "__pycache__"}


@dataclass(frozen=True)
class CodeFile:
    """One Python file of the corpus, with its obfuscated twin."""

    path: str  # relative to the corpus root, with forward slashes
    text: str
    sha256: str
    twin: Obfuscated

    @property
    def words(self) -> int:
        return count_words(self.text)


def corpus_root(spec: str | Path) -> Path:
    """The folder ``spec`` names (``STDLIB``: the interpreter's standard library)."""
    root = Path(sysconfig.get_paths()["stdlib"]) if str(spec) == STDLIB else Path(spec)
    if not root.is_dir():
        raise UserError(f"{spec}: no such folder")
    return root


def corpus_name(root: Path) -> str:
    """What the ledger calls the corpus: the standard library with its version, or a folder."""
    if root.resolve() == Path(sysconfig.get_paths()["stdlib"]).resolve():
        return f"Python {platform.python_version()} standard library"
    return f"Python files under {root.name}"


def python_paths(root: Path) -> list[Path]:
    """Every ``*.py`` file under ``root`` in sorted order, hidden and package folders left out."""
    found = []
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root).parts
        if p.is_file() and not any(x.startswith(".") or x in _LEFT_OUT for x in parts):
            found.append(p)
    if not found:
        raise UserError(f"{root}: no Python files (*.py) in this folder")
    return found


def read_text(path: Path) -> str:
    """The file decoded as Python does (PEP 263), newlines normalised; ObfuscationError when
    it cannot be."""
    data = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as e:
        raise ObfuscationError(f"cannot be decoded ({e})") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def read_code(
    path: Path, root: Path, *, strip_docstrings: bool = True, strip_comments: bool = True
) -> CodeFile:
    """Read, fingerprint and twin one file; ObfuscationError when it must be skipped."""
    text = read_text(path)
    twin = obfuscate(text, strip_docstrings=strip_docstrings, strip_comments=strip_comments)
    if len(twin.text.splitlines()) != len(text.splitlines()):
        raise ObfuscationError("the twin does not keep the file's lines")
    relative = path.relative_to(root).as_posix()
    return CodeFile(relative, text, hashlib.sha256(path.read_bytes()).hexdigest(), twin)


def read_corpus(
    root: Path,
    *,
    budget_words: int | None = None,
    seed: int = 0,
    strip_docstrings: bool = True,
    strip_comments: bool = True,
) -> tuple[list[CodeFile], list[dict[str, str]]]:
    """The usable files under ``root`` (sorted by path) and the skipped ones, ``{"path",
    "why"}``. With ``budget_words``, whole files in a seeded order, each kept if it fits in what
    is left of the budget, so the total never exceeds it."""
    paths = python_paths(root)
    if budget_words is not None:
        order = np.random.default_rng(seed).permutation(len(paths))
        paths = [paths[i] for i in order]
    files, skipped, left = [], [], budget_words
    for path in paths:
        if left is not None and left <= 0:
            break
        relative = path.relative_to(root).as_posix()
        try:
            if left is not None and count_words(read_text(path)) > left:
                continue
            code = read_code(path, root, strip_docstrings=strip_docstrings,
                             strip_comments=strip_comments)  # fmt: skip
        except (ObfuscationError, OSError) as e:
            skipped.append({"path": relative, "why": str(e)[:200]})
            continue
        files.append(code)
        if left is not None:
            left -= code.words
    if not files:
        raise UserError(f"{root}: no Python file could be read and obfuscated within the budget")
    return sorted(files, key=lambda f: f.path), sorted(skipped, key=lambda s: s["path"])


def held_out(path: str, seed: int, fraction: float) -> bool:
    """Whether the file at relative ``path`` is held out: a seeded hash below ``fraction``."""
    digest = hashlib.sha256(f"{seed}/{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
