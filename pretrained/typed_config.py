"""Typed configurations: a dataclass checked against a mapping (a TOML file, a JSON file, a sweep's table).

Unknown fields and wrong types are refused with one clear message (did-you-mean included) before any work starts;
the string literal under each field is its documentation (``--help`` in the CLI). The one home of the TOML reader.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import UserInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib


T = TypeVar("T")


class ConfigError(UserInputError):
    """A configuration file or flag is invalid."""


def field_docs(cls: type) -> dict[str, str]:
    """The string literal written under each field of a dataclass (CleanRL/tyro style)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, following in zip(body, body[1:] + [None], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _resolved_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for ``X | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """Check (and gently convert) a TOML/JSON value against a field's type."""
    inner, optional = _base_type(annotation)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config field '{name}' may not be empty")
    origin = typing.get_origin(inner)
    if origin in (list, tuple):
        (item_type, *_) = typing.get_args(inner) or (Any,)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config field '{name}' must be a list, got {type(value).__name__} {value!r}")
        items = [_coerce(f"{name}[{i}]", item_type, v) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config field '{name}' must be a table, got {type(value).__name__} {value!r}")
        key_type, value_type = typing.get_args(inner) or (Any, Any)
        return {str(k): _coerce(f"{name}.{k}", value_type, v) for k, v in value.items()}
    if inner is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config field '{name}' must be true or false, got {value!r}")
        return value
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config field '{name}' must be an integer, got {type(value).__name__} {value!r}")
        return value
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config field '{name}' must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if inner is str:
        if not isinstance(value, str):
            raise ConfigError(f"config field '{name}' must be a string, got {type(value).__name__} {value!r}")
        return value
    if typing.get_origin(inner) is typing.Literal:
        choices = typing.get_args(inner)
        if value not in choices:
            raise ConfigError(f"config field '{name}' must be one of {list(choices)}, got {value!r}")
        return value
    return value


def from_mapping(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build a config dataclass from a mapping, refusing unknown fields and wrong types."""
    hints = _resolved_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        import difflib

        hints_text = "; ".join(
            f"'{u}'" + (f" (did you mean '{m[0]}'?)" if (m := difflib.get_close_matches(u, names, 1)) else "")
            for u in unknown
        )
        raise ConfigError(f"{where}: unknown field {hints_text}; known fields: {', '.join(sorted(names))}")
    values = {name: _coerce(name, hints[name], value) for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from error


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} not found")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{what} {path} is not valid TOML: {error}") from error


def load_toml(cls: type[T], path: str | Path) -> dict[str, Any]:
    """A TOML file's fields for ``cls``, validated early with the file's name in the message."""
    data = read_toml(path)
    from_mapping(cls, data, where=str(path))  # validate early, with the file's name in the message
    return data


def to_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))
