"""Reading the catalog's JSON: a checked object reader and the validators the model shares.

Every reader names the field it complains about (``ilevels[2].targets[5].units[1].sgbm``)
and refuses unknown keys, so a typo in a hand-edited catalog is an error, not a default.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.sgbm import ProcessClass, SgbmId

__all__ = ["OPTION_CODE", "JsonObject", "check_name", "check_range", "sgbm_text"]

_T = TypeVar("_T")
OPTION_CODE = re.compile(r"\$[A-Z0-9]{3}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class JsonObject:
    """A JSON object being read: typed getters that name the field, unknown keys refused."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.where = where
        self._asked: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: object = ...) -> Any:
        self._asked.add(key)
        if key not in self.data:
            if default is ...:
                raise ConfigError(f"{self.field(key)}: missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ConfigError(f"{self.field(key)}: expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise ConfigError(
                f"{self.field(key)}: expected {_kind_name(kind)}, got {type(value).__name__}"
            )
        return value

    def text(self, key: str) -> str:
        value: str = self.get(key, str)
        return value

    def integer(self, key: str) -> int:
        value: int = self.get(key, int)
        return value

    def number(self, key: str) -> float:
        return float(self.get(key, (int, float)))

    def items(
        self, key: str, read: Callable[[object, str], _T], *, optional: bool = False
    ) -> tuple[_T, ...]:
        values: list[object] = self.get(key, list, [] if optional else ...)
        return tuple(read(v, f"{self.field(key)}[{i}]") for i, v in enumerate(values))

    def optional(self, key: str, read: Callable[[object, str], _T]) -> _T | None:
        """Read an optional object with ``read``; None when the key is absent (not null)."""
        value = self.get(key, dict, None)
        return None if value is None else read(value, self.field(key))

    def build(self, factory: Callable[..., _T], **fields: Any) -> _T:
        """Refuse unknown keys, then build; prefix the object's own errors with where."""
        unknown = sorted(set(self.data) - self._asked)
        if unknown:
            known = ", ".join(sorted(self._asked))
            raise ConfigError(f"{self.field(unknown[0])}: unknown key (known here: {known})")
        try:
            return factory(**fields)
        except ConfigError as exc:
            raise ConfigError(f"{self.where}: {exc}" if self.where else str(exc)) from exc


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", list: "an array"}
    names |= {dict: "an object", bool: "a boolean"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def sgbm_text(text: str, what: str, expected: tuple[ProcessClass, ...] = ()) -> str:
    """The canonical text of an SGBM-ID, optionally of one of the ``expected`` classes."""
    try:
        unit = SgbmId.parse(text)
    except ParseError as exc:
        raise ConfigError(f"{what}: {exc}") from exc
    if expected and unit.process_class not in expected:
        names = "/".join(c.name for c in expected)
        raise ConfigError(f"{what}: {unit} is a {unit.process_class.name}, expected {names}")
    return str(unit)


def check_range(value: int, what: str, top: int) -> None:
    """Refuse a value outside ``0..top``."""
    if not 0 <= value <= top:
        raise ConfigError(f"{what} {value:#x} must be 0-{top:#x}")


def check_name(value: str, what: str) -> None:
    """Refuse a name other than letters, digits, '.', '_' or '-', led by a letter or digit."""
    if not _NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r} must be letters, digits, '.', '_' or '-'")
