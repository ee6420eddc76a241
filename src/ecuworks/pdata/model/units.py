"""Flashable units: where each image lies, what it hashes to, and what goes where in flash."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ecuworks.errors import ConfigError
from ecuworks.pdata.model._json import JsonObject, check_name, check_range, sgbm_text
from ecuworks.wire.sgbm import ProcessClass, SgbmId

__all__ = ["CompressedForm", "Segment", "UnitInfo"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """A part of a unit image and the flash address it is downloaded to.

    Attributes:
        address: flash address (the 0x34 memory address).
        offset: where the segment starts in the image file.
        length: bytes.
    """

    address: int
    offset: int
    length: int

    def __post_init__(self) -> None:
        check_range(self.address, "segment address", 0xFFFF_FFFF)
        if self.offset < 0 or self.length <= 0:
            raise ConfigError(f"segment offset {self.offset} / length {self.length} invalid")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"address": self.address, "offset": self.offset, "length": self.length}

    @classmethod
    def from_json(cls, data: object, where: str) -> Segment:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        return obj.build(
            cls,
            address=obj.integer("address"),
            offset=obj.integer("offset"),
            length=obj.integer("length"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CompressedForm:
    """An optional compressed form of an image, for bootloaders that decompress.

    Attributes:
        path: target path inside the series.
        method: compression method name, e.g. ``"zlib"``.
        size: bytes of the compressed file.
        sha256: its SHA-256, hex.
    """

    path: str
    method: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        check_name(self.method, "method")
        if self.size <= 0:
            raise ConfigError(f"size {self.size} must be positive")
        if not _SHA256.fullmatch(self.sha256):
            raise ConfigError("sha256 must be 64 lower-case hex digits")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"path": self.path, "method": self.method, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: object, where: str) -> CompressedForm:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        return obj.build(
            cls,
            path=obj.text("path"),
            method=obj.text("method"),
            size=obj.integer("size"),
            sha256=obj.text("sha256"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitInfo:
    """One flashable software unit and its image (``EWU1`` header + payload).

    Attributes:
        sgbm: the unit.
        path: the image's target path inside the series, e.g. ``"units/SWFL-....bin"``.
        size: bytes of the image, header included.
        sha256: SHA-256 of the image, hex (the signed metadata says the same).
        segments: what goes where in flash.
        compressed: an optional compressed form.
    """

    sgbm: str
    path: str
    size: int
    sha256: str
    segments: tuple[Segment, ...]
    compressed: CompressedForm | None = None

    def __post_init__(self) -> None:
        sgbm = sgbm_text(self.sgbm, "sgbm")
        if SgbmId.parse(sgbm).process_class in (ProcessClass.HWEL, ProcessClass.CAFD):
            raise ConfigError(f"sgbm: {sgbm} is no flashable unit")
        object.__setattr__(self, "sgbm", sgbm)
        if self.size <= 0:
            raise ConfigError(f"size {self.size} must be positive")
        if not _SHA256.fullmatch(self.sha256):
            raise ConfigError("sha256 must be 64 lower-case hex digits")
        object.__setattr__(self, "segments", tuple(self.segments))
        if not self.segments:
            raise ConfigError("segments: a unit needs at least one segment")
        for i, seg in enumerate(self.segments):
            if seg.offset + seg.length > self.size:
                raise ConfigError(f"segments[{i}]: ends after the image's {self.size} bytes")

    @property
    def unit(self) -> SgbmId:
        """The parsed SGBM-ID."""
        return SgbmId.parse(self.sgbm)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {
            "sgbm": self.sgbm,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "segments": [s.to_json() for s in self.segments],
        }
        if self.compressed is not None:
            out["compressed"] = self.compressed.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, where: str) -> UnitInfo:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        compressed = obj.get("compressed", dict, None)
        return obj.build(
            cls,
            sgbm=obj.text("sgbm"),
            path=obj.text("path"),
            size=obj.integer("size"),
            sha256=obj.text("sha256"),
            segments=obj.items("segments", Segment.from_json),
            compressed=None
            if compressed is None
            else CompressedForm.from_json(compressed, obj.field("compressed")),
        )
