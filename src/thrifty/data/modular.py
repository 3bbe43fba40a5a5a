"""Modular arithmetic written as text, prepared as a dataset: the grokking task.

Power et al. 2022 ("Grokking: generalization beyond overfitting on small algorithmic datasets")
train a small transformer on a share of all equations ``a ∘ b = c (mod p)`` and watch accuracy
on the rest jump long after the training set is fitted. Li, Fan & Zhou 2025
(``papers/grokking_pathways.md``) use that task as the small-scale check of their MoE pathway
metrics. Here every equation is one line, ``"a + b = c"``, so it is one document; ``prepare``'s
seeded ``valid_fraction`` split then holds out whole equations, and the validation split is
exactly the test set. The equations file sits beside the dataset folder so that the ledger's
source sha256 names a real file.

The vocabulary is sized so that byte-level BPE, which keeps merging until no pair is left when
the budget allows it, ends with every number seen in training as one token (``"12"`` as a first
operand, ``" 12"`` after a space): one answer is then one prediction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.atomic import write_text_atomic
from thrifty.errors import UserError

# name -> (symbol, c of a and b mod p); division multiplies by the inverse, so it needs a prime p
OPERATIONS: dict[str, tuple[str, Callable[[int, int, int], int]]] = {
    "add": ("+", lambda a, b, p: (a + b) % p),
    "sub": ("-", lambda a, b, p: (a - b) % p),
    "mul": ("*", lambda a, b, p: (a * b) % p),
    "div": ("/", lambda a, b, p: (a * pow(b, -1, p)) % p),
}
SYMBOLS = {symbol: name for name, (symbol, _) in OPERATIONS.items()}
_EQUATION = re.compile(r"(\d+) (\S) (\d+) = (\d+)")


@dataclass(frozen=True)
class Equation:
    """``a op b = c``; ``op`` is the symbol (+, -, *, /)."""

    a: int
    op: str
    b: int
    c: int

    @property
    def prompt(self) -> str:
        """Everything before the answer: ``"a op b ="``."""
        return f"{self.a} {self.op} {self.b} ="

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.c}"


def parse_equation(text: str) -> Equation:
    """The equation a line of the task holds; a UserError for anything else."""
    match = _EQUATION.fullmatch(text.strip())
    if match is None or match.group(2) not in SYMBOLS:
        raise UserError(f"not an equation of the form 'a op b = c': {text!r}")
    a, op, b, c = match.groups()
    return Equation(int(a), op, int(b), int(c))


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


class TaskSettingError(UserError):
    """A setting that defines no task: which one, its value, and what is wrong with it."""

    def __init__(self, setting: str, value: object, problem: str) -> None:
        self.setting, self.value, self.problem = setting, value, problem
        super().__init__(f"{setting}={value!r}: {problem}")


def check_task(modulus: int, operation: str, train_fraction: float) -> None:
    """TaskSettingError for settings that define no task."""
    if modulus < 2:
        raise TaskSettingError("modulus", modulus, "must be at least 2")
    if operation not in OPERATIONS:
        raise TaskSettingError("operation", operation, f"choose from {', '.join(OPERATIONS)}")
    if operation == "div" and not is_prime(modulus):
        # a / b is a times the inverse of b, which every b != 0 has only when p is prime
        raise TaskSettingError("modulus", modulus, "div needs a prime modulus")
    if not 0 < train_fraction < 1:
        raise TaskSettingError("train_fraction", train_fraction, "must be in (0, 1)")


def equations(modulus: int, operation: str) -> Iterator[Equation]:
    """Every equation of the table in (a, b) order: p² of them (p(p − 1) for div, b ≠ 0)."""
    check_task(modulus, operation, 0.5)
    symbol, apply = OPERATIONS[operation]
    for a in range(modulus):
        for b in range(1 if operation == "div" else 0, modulus):
            yield Equation(a, symbol, b, apply(a, b, modulus))


def write_equations(path: Path, modulus: int, operation: str) -> int:
    """Write the whole table to ``path``, one equation per line; the number written."""
    lines = [e.text for e in equations(modulus, operation)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return len(lines)


def vocab_size_for(modulus: int) -> int:
    """A BPE budget that never runs out before every number is one token.

    A word of n bytes needs at most n − 1 merges; the words are each number with and without a
    leading space, the operator and ``=`` (with a space): at most 2·digits + 1 per number, plus
    room for those two. The trained tokenizer stops earlier, when no pair is left.
    """
    from thrifty.data.tokenizer import MIN_VOCAB

    digits = len(str(modulus - 1))
    return MIN_VOCAB + modulus * (2 * digits + 1) + 8


def equations_path(out: Path) -> Path:
    """The equations file of the dataset folder ``out``: beside it, ``<out>.equations.txt``."""
    out = Path(out)
    return out.with_name(f"{out.name}.equations.txt")


def prepare_modular(
    out: Path,
    *,
    modulus: int = 97,
    operation: str = "add",
    train_fraction: float = 0.5,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the equations of ``a op b mod modulus`` and prepare them into ``out``, holding out
    ``1 − train_fraction`` of them (seeded) as the validation split. Returns the manifest."""
    # prepare (tokenizers, numpy) loads here, so the CLI can list OPERATIONS without it
    from thrifty.data.prepare import prepare

    check_task(modulus, operation, train_fraction)
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not empty; pass overwrite (--overwrite)")
    source = equations_path(out)
    existed = source.exists()
    write_equations(source, modulus, operation)
    try:
        return prepare(
            [source],
            out,
            budget_words=None,  # the whole table: the split decides what training sees
            seed=seed,
            vocab_size=vocab_size_for(modulus),
            valid_fraction=1.0 - train_fraction,
            overwrite=overwrite,
            progress=progress,
        )
    except BaseException:
        if not existed:
            source.unlink(missing_ok=True)  # a failed preparation leaves nothing behind
        raise
