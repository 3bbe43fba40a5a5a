"""Allowed ranges of numeric config fields, declared next to the field.

``batch_size: int = bounded(32, ge=1)`` puts a ``Bounds`` in the field's metadata; the config
loader checks every value it reads against it, so a bad number is one line that names the key,
the value and the range (``train.log_every=0: must be >= 1``) before anything is built or
written. For a tuple field the bounds hold for each element.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from thrifty.errors import UserError

KEY = "bounds"


@dataclass(frozen=True)
class Bounds:
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        """'>= 0 and < 1' and the like."""
        ops = zip((">=", ">", "<=", "<"), (self.ge, self.gt, self.le, self.lt))
        return " and ".join(f"{op} {x:g}" for op, x in ops if x is not None)

    def holds(self, x: float) -> bool:
        return (
            math.isfinite(x)
            and (self.ge is None or x >= self.ge)
            and (self.gt is None or x > self.gt)
            and (self.le is None or x <= self.le)
            and (self.lt is None or x < self.lt)
        )


def bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with ``default`` whose values must lie in the given range."""
    return dataclasses.field(default=default, metadata={KEY: Bounds(ge, gt, le, lt)})


def check_bounds(field: dataclasses.Field, value: Any, where: str) -> None:
    """Raise a UserError naming ``where`` and ``value`` when it leaves the field's range.

    Numbers must be finite even where no range is declared: ``.nan`` or ``.inf`` is never a
    setting.
    """
    bounds = field.metadata.get(KEY, Bounds())
    items = value if isinstance(value, tuple) else (value,)
    for x in items:
        if isinstance(x, int | float) and not isinstance(x, bool) and not bounds.holds(x):
            finite = "a finite number" if not math.isfinite(x) else ""
            limits = " ".join(part for part in (finite, bounds.describe()) if part)
            raise UserError(f"{where}={_show(value)}: must be {limits}")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_show, value)) + "]"
    return str(value)
