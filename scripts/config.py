"""Command-line flags for typed configurations: one ``--flag`` per dataclass field, its docstring as the help.

A config comes from defaults, then an optional TOML file, then command-line flags (the checking lives in
:mod:`notetune.pretrained.typed_config`).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

from notetune.pretrained.typed_config import (  # noqa: F401  (re-exported for the commands)
    ConfigError,
    _base_type,
    _resolved_types,
    field_docs,
    from_mapping,
    load_toml,
    read_toml,
    to_dict,
)

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per dataclass field; defaults stay None so a TOML file can supply them."""
    docs = field_docs(cls)
    hints = _resolved_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        inner, _ = _base_type(hints[f.name])
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )  # type: ignore[misc]
        doc = docs.get(f.name, "")
        # A None default filled in at run time (e.g. scaled with the piece's length) is described by its docstring.
        shown = "" if default is None and "Default:" in doc else f" (default: {default})"
        help_text = f"{doc}{shown}".replace("%", "%%")  # argparse formats %
        origin = typing.get_origin(inner)
        if inner is bool and f.name.startswith("no_"):
            # argparse's BooleanOptionalAction reads any "--no-..." flag as False; a negative name is a switch.
            parser.add_argument(flag, dest=f.name, action="store_true", default=None, help=help_text)
        elif inner is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif origin in (list, tuple):
            (item_type, *_) = typing.get_args(inner) or (str,)
            parser.add_argument(
                flag,
                dest=f.name,
                action="append",
                type=item_type,
                default=None,
                help=help_text + " (repeatable)",
            )
        elif origin is dict:
            parser.add_argument(
                flag,
                dest=f.name,
                action="append",
                default=None,
                metavar="KEY=VALUE",
                help=help_text + " (repeatable)",
            )
        elif typing.get_origin(inner) is typing.Literal:
            parser.add_argument(flag, dest=f.name, choices=typing.get_args(inner), default=None, help=help_text)
        else:
            parser.add_argument(
                flag, dest=f.name, type=inner if inner in (int, float) else str, default=None, help=help_text
            )


def from_args(
    cls: type[T],
    args: argparse.Namespace,
    config_file: str | Path | None = None,
    base: dict[str, Any] | None = None,
) -> T:
    """Defaults < ``base`` < TOML file < flags that were given."""
    data: dict[str, Any] = dict(base or {})
    if config_file:
        data.update(load_toml(cls, config_file))
    hints = _resolved_types(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(args, f.name, None)
        if value is None:
            continue
        inner, _ = _base_type(hints[f.name])
        if typing.get_origin(inner) is dict:
            parsed = {}
            flag = "--" + f.name.replace("_", "-")
            numbers = typing.get_args(inner)[1:] in ((float,), (int,))
            for item in value:
                key, sep, raw = item.partition("=")
                if not sep:
                    raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
                if numbers and not _is_number(raw):
                    raise ConfigError(f"{flag} {item}: {raw!r} is not a number; write KEY=NUMBER, e.g. {flag} {key}=3")
                parsed[key] = float(raw) if _is_number(raw) else raw
            value = {**data.get(f.name, {}), **parsed}
        data[f.name] = value
    return from_mapping(cls, data, where=str(config_file) if config_file else "arguments")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
