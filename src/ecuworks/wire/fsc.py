"""Enabling codes (FSC, "Freischaltcode"): the signed record and the ECU's status answer.

An FSC unlocks one function (an *application*, by 16-bit id) on one vehicle (its VIN), at
one *upgrade index* (a newer index supersedes an older code of the same application). The
backend signs it with Ed25519; the ECU verifies the signature with the issuer's public key
it trusts, then compares the VIN with its own. Layout of the 93-byte record, big-endian:

======  =====  ===================================================================
offset  size   field
======  =====  ===================================================================
0       4      magic ``FSC1``
4       17     VIN, ASCII
21      2      application id
23      2      upgrade index
25      4      issued, Unix seconds
29      64     Ed25519 signature over bytes 0-28
======  =====  ===================================================================

DIDs (:class:`~ecuworks.wire.uds.Did`): ``FSC_RECORDS`` 0x1041 reads every accepted record
the ECU stores, concatenated, and writes one record; ``FSC_STATUS`` 0x1042 reads the
ECU's verdict per application, 5 bytes each: application id (2), upgrade index (2),
status (1, :class:`FscStatus`), as :func:`encode_status` lays them out.

This module only lays bytes out; signing is the backend's (``ecuworks.backend.fsc``),
verifying the ECU's and the workstation's (``ecuworks.enabling.fsc``). Decoders raise only
:class:`~ecuworks.errors.ParseError`; constructors raise
:class:`~ecuworks.errors.ConfigError` for values that do not fit the record.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from ecuworks.errors import ConfigError, ParseError

__all__ = [
    "MAGIC",
    "RECORD_LENGTH",
    "SIGNATURE_LENGTH",
    "SIGNED_LENGTH",
    "STATUS_ENTRY_LENGTH",
    "VIN_LENGTH",
    "Fsc",
    "FscStatus",
    "FscStatusEntry",
    "decode_records",
    "decode_status",
    "encode_status",
]

MAGIC = b"FSC1"
VIN_LENGTH = 17
SIGNATURE_LENGTH = 64
_SIGNED = struct.Struct(">4s17sHHI")
SIGNED_LENGTH = _SIGNED.size
RECORD_LENGTH = SIGNED_LENGTH + SIGNATURE_LENGTH
_ENTRY = struct.Struct(">HHB")
STATUS_ENTRY_LENGTH = _ENTRY.size
assert (SIGNED_LENGTH, RECORD_LENGTH, STATUS_ENTRY_LENGTH) == (29, 93, 5)


class FscStatus(IntEnum):
    """The ECU's verdict on the latest code written for an application.

    ``ACCEPTED``: signed by the trusted issuer, for this vehicle; stored and in force.
    ``REJECTED``: the signature is good, but the code was issued for another VIN.
    ``INVALID``: the signature does not verify (altered, or not from the issuer), or the
    record is unusable.
    """

    ACCEPTED = 0
    REJECTED = 1
    INVALID = 2


def _check_range(value: int, what: str, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise ConfigError(f"FSC {what} must be 0-{maximum:#x}, got {value}")


def _vin_bytes(vin: str) -> bytes:
    """Return the VIN as 17 ASCII bytes; ConfigError if it is not."""
    if not vin.isascii() or len(vin) != VIN_LENGTH:
        raise ConfigError(f"FSC VIN must be {VIN_LENGTH} ASCII characters, got {vin!r}")
    return vin.encode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fsc:
    """One enabling code record (see the module docstring for its layout).

    Attributes:
        vin: the vehicle it is issued for, 17 ASCII characters.
        app_id: the application (function) it unlocks, 16 bits.
        upgrade_index: which upgrade of the application, 16 bits.
        issued: when the backend issued it, Unix seconds (32 bits).
        signature: Ed25519 signature over :meth:`signed_bytes`, 64 bytes.
    """

    vin: str
    app_id: int
    upgrade_index: int
    issued: int
    signature: bytes

    def __post_init__(self) -> None:
        _vin_bytes(self.vin)
        _check_range(self.app_id, "application id", 0xFFFF)
        _check_range(self.upgrade_index, "upgrade index", 0xFFFF)
        _check_range(self.issued, "issue time", 0xFFFF_FFFF)
        if len(self.signature) != SIGNATURE_LENGTH:
            raise ConfigError(
                f"FSC signature must be {SIGNATURE_LENGTH} bytes (Ed25519), "
                f"got {len(self.signature)}"
            )

    def signed_bytes(self) -> bytes:
        """Return bytes 0-28 of the record: what the signature covers."""
        return _SIGNED.pack(
            MAGIC, _vin_bytes(self.vin), self.app_id, self.upgrade_index, self.issued
        )

    def encode(self) -> bytes:
        """Return the 93-byte record."""
        return self.signed_bytes() + bytes(self.signature)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Fsc:
        """Decode one 93-byte record. The signature is not checked here.

        Raises:
            ParseError: not 93 bytes, magic not ``FSC1``, or a VIN that is not ASCII.
        """
        if len(data) != RECORD_LENGTH:
            raise ParseError(
                f"an enabling code (FSC) record is {RECORD_LENGTH} bytes, got {len(data)}: "
                "it is truncated or no FSC"
            )
        magic, vin, app_id, upgrade_index, issued = _SIGNED.unpack_from(data)
        if magic != MAGIC:
            raise ParseError(
                f"FSC record magic is {bytes(magic).hex()}, expected {MAGIC.hex()} "
                f"({MAGIC.decode()}): this is no enabling code"
            )
        try:
            text = vin.decode("ascii")
        except UnicodeDecodeError:
            raise ParseError(f"FSC record VIN is not ASCII: {vin.hex()}") from None
        return cls(
            vin=text,
            app_id=app_id,
            upgrade_index=upgrade_index,
            issued=issued,
            signature=bytes(data[SIGNED_LENGTH:]),
        )


def decode_records(data: bytes | bytearray | memoryview) -> list[Fsc]:
    """Decode the records of DID 0x1041: zero or more 93-byte records back to back.

    Raises:
        ParseError: the length is not a multiple of 93, or a record does not decode.
    """
    if len(data) % RECORD_LENGTH:
        raise ParseError(f"FSC records come in {RECORD_LENGTH}-byte records, got {len(data)} bytes")
    return [Fsc.decode(data[i : i + RECORD_LENGTH]) for i in range(0, len(data), RECORD_LENGTH)]


@dataclass(frozen=True, slots=True, kw_only=True)
class FscStatusEntry:
    """One application's entry in the status DID 0x1042.

    Attributes:
        app_id: the application id.
        upgrade_index: the upgrade index of the latest code written for it.
        status: the ECU's verdict on that code.
    """

    app_id: int
    upgrade_index: int
    status: FscStatus

    def __post_init__(self) -> None:
        _check_range(self.app_id, "application id", 0xFFFF)
        _check_range(self.upgrade_index, "upgrade index", 0xFFFF)
        object.__setattr__(self, "status", FscStatus(self.status))


def encode_status(entries: Iterable[FscStatusEntry]) -> bytes:
    """Return the record of DID 0x1042: 5 bytes per entry, in the order given."""
    return b"".join(_ENTRY.pack(e.app_id, e.upgrade_index, e.status) for e in entries)


def decode_status(data: bytes | bytearray | memoryview) -> list[FscStatusEntry]:
    """Decode the record of DID 0x1042.

    Raises:
        ParseError: the length is not a multiple of 5, or a status byte is not one of
            :class:`FscStatus`.
    """
    if len(data) % STATUS_ENTRY_LENGTH:
        raise ParseError(
            f"FSC status entries are {STATUS_ENTRY_LENGTH} bytes each, got {len(data)} bytes"
        )
    entries = []
    for app_id, upgrade_index, status in _ENTRY.iter_unpack(data):
        try:
            verdict = FscStatus(status)
        except ValueError:
            known = ", ".join(f"{s.value} {s.name.lower()}" for s in FscStatus)
            raise ParseError(
                f"FSC status 0x{status:02X} of application 0x{app_id:04X} is unknown "
                f"(known: {known})"
            ) from None
        entries.append(FscStatusEntry(app_id=app_id, upgrade_index=upgrade_index, status=verdict))
    return entries
