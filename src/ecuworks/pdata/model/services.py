"""What a series offers beyond flashing: CAFD coding rules, FSC enabling, retrofits, DTCs.

*CAFD* coding rules map VO conditions to parameter values; *FSC* applications are what
enabling codes unlock; a *retrofit* installs hardware for an option and lists what to
program, code and enable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ecuworks.errors import ConfigError
from ecuworks.pdata.model._json import (
    OPTION_CODE,
    JsonObject,
    check_name,
    check_range,
    sgbm_text,
)
from ecuworks.pdata.model.release import Condition
from ecuworks.wire.sgbm import ProcessClass

__all__ = ["CodingRule", "DtcDescription", "FscApplication", "Retrofit"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CodingRule:
    """One CAFD rule: set ``parameter`` to ``value`` when ``when`` holds (None = default).

    Rules of one parameter are tried in order; the first that holds wins.

    Attributes:
        address: the ECU.
        cafd: the CAFD unit the rule belongs to (SGBM-ID; rules hold for any version).
        parameter: parameter name in the ECU's coding layout.
        value: value name.
        when: the VO condition, or None.
    """

    address: int
    cafd: str
    parameter: str
    value: str
    when: Condition | None = None

    def __post_init__(self) -> None:
        check_range(self.address, "address", 0xFF)
        object.__setattr__(self, "cafd", sgbm_text(self.cafd, "cafd", (ProcessClass.CAFD,)))
        check_name(self.parameter, "parameter")
        check_name(self.value, "value")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {
            "address": self.address,
            "cafd": self.cafd,
            "parameter": self.parameter,
            "value": self.value,
        }
        if self.when is not None:
            out["when"] = self.when.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, where: str) -> CodingRule:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        return obj.build(
            cls,
            address=obj.integer("address"),
            cafd=obj.text("cafd"),
            parameter=obj.text("parameter"),
            value=obj.text("value"),
            when=obj.optional("when", Condition.from_json),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FscApplication:
    """A function an enabling code (FSC) unlocks.

    Attributes:
        app_id: application id (16 bits).
        name: what it unlocks.
        address: the ECU the code is written to.
        upgrade_index: the current upgrade index.
    """

    app_id: int
    name: str
    address: int
    upgrade_index: int = 1

    def __post_init__(self) -> None:
        check_range(self.app_id, "app_id", 0xFFFF)
        check_range(self.address, "address", 0xFF)
        check_range(self.upgrade_index, "upgrade_index", 0xFFFF)
        if not self.name.strip():
            raise ConfigError("name must not be empty")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "app_id": self.app_id,
            "name": self.name,
            "address": self.address,
            "upgrade_index": self.upgrade_index,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> FscApplication:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        return obj.build(
            cls,
            app_id=obj.integer("app_id"),
            name=obj.text("name"),
            address=obj.integer("address"),
            upgrade_index=obj.integer("upgrade_index"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrofit:
    """What retrofitting one option takes.

    Attributes:
        option: the option code added to the VO, e.g. ``"$610"``.
        name: what it is.
        install: ECUs to install, each in the keys of a profile's ``[[ecus]]`` table
            (the simulator's ``POST /ecus`` body; region sizes are real-world bytes).
        program: addresses to program to the target SVK.
        code: addresses to code.
        enable: FSC application ids to enable.
    """

    option: str
    name: str
    install: tuple[Mapping[str, Any], ...] = field(hash=False)
    program: tuple[int, ...] = ()
    code: tuple[int, ...] = ()
    enable: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not OPTION_CODE.fullmatch(self.option):
            raise ConfigError(f"option {self.option!r} must be like $609")
        for attr in ("install", "program", "code", "enable"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        for i, table in enumerate(self.install):
            if not isinstance(table.get("address"), int) or not isinstance(table.get("name"), str):
                raise ConfigError(f"install[{i}]: an ECU table needs address and name")
        for address in (*self.program, *self.code):
            check_range(address, "address", 0xFF)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "option": self.option,
            "name": self.name,
            "install": [dict(t) for t in self.install],
            "program": list(self.program),
            "code": list(self.code),
            "enable": list(self.enable),
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> Retrofit:
        """Read the JSON form."""
        obj = JsonObject(data, where)

        def ints(key: str) -> tuple[int, ...]:
            return obj.items(key, _int_item)

        return obj.build(
            cls,
            option=obj.text("option"),
            name=obj.text("name"),
            install=obj.items("install", _dict_item),
            program=ints("program"),
            code=ints("code"),
            enable=ints("enable"),
        )


def _int_item(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer")
    return value


def _dict_item(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class DtcDescription:
    """What a 3-byte DTC means.

    Attributes:
        code: the DTC.
        text: its description for the technician.
    """

    code: int
    text: str

    def __post_init__(self) -> None:
        check_range(self.code, "code", 0xFF_FFFF)
        if not self.text.strip():
            raise ConfigError("text must not be empty")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"code": self.code, "text": self.text}

    @classmethod
    def from_json(cls, data: object, where: str) -> DtcDescription:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        return obj.build(cls, code=obj.integer("code"), text=obj.text("text"))
