"""The named vocabularies, and the one table that says which values each kind of dataclass field accepts.

Profiles (TOML) and records (JSON) arrive as plain values that someone may have edited by hand; both are
checked field by field against this table before any code relies on them. A field whose annotation is not in
the table is a programming error, found the first time such a value is checked, never passed silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, get_args

App = Literal["lab", "server", "notebook"]
Bind = Literal["localhost", "socket", "node"]
SshStyle = Literal["command", "config"]
Kind = Literal["run", "unit", "job"]  # a foreground run, a systemd user unit, a Slurm batch job

APPS: tuple[App, ...] = get_args(App)
BINDS: tuple[Bind, ...] = get_args(Bind)
SSH_STYLES: tuple[SshStyle, ...] = get_args(SshStyle)
KINDS: tuple[Kind, ...] = get_args(Kind)


def _plain(kind: type) -> Callable[[object], bool]:
    # bool is an int to Python, never to a profile or a record
    return lambda value: type(value) is kind


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _string_table(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _number(value: object) -> bool:
    return type(value) in (int, float)


# annotation (as written: `from __future__ import annotations` keeps them strings) -> (check, what is expected)
CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "str": (_plain(str), "a string"),
    "int": (_plain(int), "an integer"),
    "bool": (_plain(bool), "true or false"),
    "float": (_number, "a number"),
    "float | None": (lambda value: value is None or _number(value), "a number or null"),
    "list[str]": (_strings, "a list of strings"),
    "dict[str, str]": (_string_table, "a table of strings"),
    "dict[str, Any]": (lambda value: isinstance(value, dict), "a table"),
    # the vocabularies: a string here, its allowed values checked where a message can name them
    "App": (_plain(str), "a string"),
    "Bind": (_plain(str), "a string"),
    "SshStyle": (_plain(str), "a string"),
    "Kind": (_plain(str), "a string"),
}


def expected(field: dataclasses.Field[Any]) -> tuple[Callable[[object], bool], str]:
    """The check for a dataclass field's values and how to name what it expects."""
    try:
        return CHECKS[str(field.type)]
    except KeyError:
        raise TypeError(f"no value check for field {field.name}: {field.type}; add it to fields.CHECKS") from None


def fits(field: dataclasses.Field[Any], value: object) -> bool:
    return expected(field)[0](value)
