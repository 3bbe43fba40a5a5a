"""Typed dataclasses from plain data and back: the checks behind thrifty's config loading.

``from_dict`` builds a dataclass from a mapping, converting and checking every value against its
annotation and declared range, and naming the dotted key of anything wrong; ``to_dict`` writes
YAML-safe data back; ``apply_overrides`` sets dotted ``a.b=value`` pairs; ``read_yaml`` reads a
mapping with errors that name the file and line; ``field_docs`` reads attribute docstrings.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from thrifty.bounds import check_bounds
from thrifty.errors import UserError
from thrifty.registry import suggest


def _check_value(tp: Any, value: Any, where: str) -> Any:
    """Return ``value`` converted to ``tp`` or raise a UserError naming ``where``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(arg, value, where)
            except UserError as e:
                errors.append(str(e))
        raise errors[0] if len(errors) == 1 else UserError(f"{where}: bad value {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            allowed = ", ".join(map(str, typing.get_args(tp)))
            raise UserError(f"{where}: {value!r} is not one of {allowed}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise UserError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(
            _check_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))
        )
    if tp is dict:
        if isinstance(value, str):  # `model.mlp=moe`: a registry section named by its member
            return {"name": value}
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise UserError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def from_dict(cls: type, data: dict, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types are UserErrors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise UserError(f"unknown config key {path!r}{suggest(key, list(fields))}")
        kwargs[key] = _check_value(hints[key], value, path)
        check_bounds(fields[key], kwargs[key], path)
        default = _default(fields[key])
        if isinstance(default, dict) and "name" in default and isinstance(kwargs[key], dict):
            # `model.linear.rank=4` alone keeps the default member (dense) it refines
            kwargs[key] = {"name": default["name"], **kwargs[key]}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise UserError(f"{where or cls.__name__}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Plain YAML-safe data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set ``a.b.c=value`` pairs in a nested dict; values are parsed with yaml.safe_load."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if isinstance(node.get(part), str):  # `model.mlp=moe model.mlp.experts=4`
                node[part] = {"name": node[part]}
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else None
    return data


def read_yaml(path: Path) -> dict:
    """The mapping in a YAML file (empty file: {}); a broken file is one line naming it."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}{line}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping")
    return data


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal after each field)."""
    tree = ast.parse(inspect.getsource(cls).lstrip())
    docs, body = {}, tree.body[0].body
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = str(nxt.value.value)
    return docs
