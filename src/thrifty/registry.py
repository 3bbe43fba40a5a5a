"""Registry: a short name -> a class with a nested ``Config`` dataclass.

One instance per plug-in family (objectives, linear layers, samplers, eval tasks) lives in that
family's ``base.py``. A config section names its member with ``name:``; the remaining keys fill
the member's ``Config``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from thrifty.errors import UserError

T = TypeVar("T")


def suggest(word: str, choices: list[str]) -> str:
    """' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry:
    """Maps short names to classes; each class carries a dataclass ``Config``."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._members: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            if name in self._members:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            if not hasattr(cls, "Config"):
                raise TypeError(f"{self.family} {name!r} needs a nested Config dataclass")
            self._members[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return add

    def names(self) -> list[str]:
        return sorted(self._members)

    def get(self, name: str) -> type:
        if name not in self._members:
            raise UserError(
                f"unknown {self.family} {name!r}{suggest(name, self.names())}; "
                f"choose from {', '.join(self.names())}"
            )
        return self._members[name]

    def config(self, section: dict[str, Any], where: str = "") -> Any:
        """Build the member's Config from a section {"name": ..., **fields}."""
        from thrifty.config import from_dict  # config imports nothing from here at load time

        if "name" not in section:
            raise UserError(f"{where or self.family}: missing 'name' (one of {self.names()})")
        fields = {k: v for k, v in section.items() if k != "name"}
        cls = self.get(section["name"])
        return from_dict(cls.Config, fields, where or self.family)

    def build(self, section: dict[str, Any], *args: Any, **runtime: Any) -> Any:
        """Instantiate the member named in ``section`` as ``cls(cfg, *args, **runtime)``."""
        cls = self.get(section["name"])
        return cls(self.config(section), *args, **runtime)
