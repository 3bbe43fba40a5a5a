"""Parse human-friendly counts on the command line: 10_000_000, 250k, 1M, 1.5B, 2e6."""

from __future__ import annotations

import re
from decimal import Decimal

from thrifty.errors import UserError

_PATTERN = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(?:e(\d+))?([kmbg]?)", re.IGNORECASE)
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def parse_count(text: str) -> int:
    """A non-negative whole number; ``_`` and ``,`` separators and k/M/B suffixes allowed."""
    match = _PATTERN.fullmatch(str(text).strip().replace("_", "").replace(",", ""))
    if not match:
        raise UserError(f"{text!r} is not a count; write e.g. 10000000, 10_000_000, 250k or 1M")
    number, exponent, suffix = match.groups()
    # Decimal, not float, so that "1.1M" is exactly 1,100,000
    value = Decimal(number) * Decimal(10) ** int(exponent or 0) * _SCALE[suffix.lower()]
    if value != value.to_integral_value():
        raise UserError(f"{text!r} is not a whole number")
    return int(value)


def as_count(text: str) -> int:
    """``parse_count`` as an argparse ``type=``: a bad count becomes argparse's usage error,
    which names the option."""
    import argparse

    try:
        return parse_count(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
