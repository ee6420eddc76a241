"""Enabling codes (FSC) on the workstation side: check, write, read back, explain.

A code (:class:`~ecuworks.wire.fsc.Fsc`) is written with WriteDataByIdentifier to DID
``FSC_RECORDS`` (0x1041) in the extended session with security level 0x01 unlocked; the
ECU answers positively whatever it thinks of the code, and tells its verdict in DID
``FSC_STATUS`` (0x1042): accepted, rejected (another vehicle's VIN) or invalid (the
signature does not verify). Reading 0x1041 gives every accepted code the ECU stores: the
backup to write back after a module replacement.

:func:`verify_fsc` gives the same verdict locally, with a sentence why, before anything is
sent; :func:`ensure_accepted` turns an ECU's verdict into :class:`~ecuworks.errors.FscRefused`
with a message a technician can act on. New codes come from an :class:`FscSource` (the
central backend over HTTP, or its issuer in-process), which the execute layer is handed so
that it never imports the backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ecuworks.errors import FscRefused, ParseError, UnexpectedResponse
from ecuworks.uds.client import UdsClient
from ecuworks.uds.security import KeyAlgorithm
from ecuworks.wire.fsc import Fsc, FscStatus, decode_records, decode_status
from ecuworks.wire.uds import Did, Session

__all__ = [
    "CODING_LEVEL",
    "FscCheck",
    "FscSource",
    "ensure_accepted",
    "read_fsc_records",
    "read_fsc_status",
    "verify_fsc",
    "write_fsc",
    "write_fscs",
]

# The security level of the extended and coding sessions (the one coding unlocks too).
CODING_LEVEL = 0x01

_ALTERED = "its signature does not verify (the code was altered or not issued by the backend)"


class FscSource(Protocol):
    """Where new codes come from: ``await source(vin, app_id, upgrade_index) -> record``.

    The central backend provides one over HTTP
    (:func:`ecuworks.platform.fsc_client.backend_fsc_source`), its issuer one in-process
    (``FscIssuer.source()``); the execute layer and the command line take it as a
    parameter. Returns the 93-byte record.
    """

    async def __call__(self, vin: str, app_id: int, upgrade_index: int, /) -> bytes:
        """Return a code for ``app_id`` at ``upgrade_index`` on vehicle ``vin``.

        Raises:
            ConfigError: no code can be had (the issuer refused or did not answer); the
                message says why and what to do.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FscCheck:
    """The verdict an ECU would give a code, found locally.

    Attributes:
        status: accepted, rejected or invalid, as the ECU would say.
        reason: one sentence why, e.g. "it was issued for VIN X, this vehicle is Y".
        vin: the vehicle's VIN the code was checked against.
        code: the decoded record, or None when the bytes are no FSC record.
    """

    status: FscStatus
    reason: str
    vin: str
    code: Fsc | None

    @property
    def accepted(self) -> bool:
        """Whether the ECU would accept the code."""
        return self.status is FscStatus.ACCEPTED


def verify_fsc(record: bytes, public_key: bytes, vin: str) -> FscCheck:
    """Check a code as the ECU will: decodes, signature verifies, VIN matches.

    The signature is checked first, so a code altered in any byte (its VIN too) is
    invalid, and only a genuine code for another vehicle is rejected.

    Args:
        record: the 93-byte record.
        public_key: the issuer's raw 32-byte Ed25519 public key, the one the ECU trusts.
        vin: the vehicle's VIN.

    Returns:
        The verdict and its reason; never raises for bad input.
    """
    try:
        code = Fsc.decode(record)
    except ParseError as exc:
        return FscCheck(
            status=FscStatus.INVALID,
            reason=f"it is no enabling code record ({exc})",
            vin=vin,
            code=None,
        )
    if not _signed_by(code, public_key):
        return FscCheck(status=FscStatus.INVALID, reason=_ALTERED, vin=vin, code=code)
    if code.vin != vin:
        return FscCheck(
            status=FscStatus.REJECTED,
            reason=f"it was issued for VIN {code.vin}, this vehicle is {vin}",
            vin=vin,
            code=code,
        )
    return FscCheck(
        status=FscStatus.ACCEPTED,
        reason=f"it is signed by the issuer and issued for this vehicle ({vin})",
        vin=vin,
        code=code,
    )


def _signed_by(code: Fsc, public_key: bytes) -> bool:
    """Whether the code's Ed25519 signature verifies with ``public_key``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
        key.verify(code.signature, code.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


def ensure_accepted(
    status: FscStatus,
    app_id: int,
    name: str,
    ecu_label: str,
    check: FscCheck | None = None,
) -> None:
    """Raise unless the ECU accepted the code; the message says why and what to do.

    Args:
        status: the ECU's verdict (from :func:`write_fsc`).
        app_id: the application the code is for.
        name: what it unlocks, e.g. ``"Navigation map update"``.
        ecu_label: the ECU as messages name it, e.g. ``"HU (0x63)"``.
        check: :func:`verify_fsc`'s local verdict on the same code, if made: its reason
            (the two VINs) goes into the message when it agrees with the ECU.

    Raises:
        FscRefused: the status is rejected or invalid.
    """
    if status is FscStatus.ACCEPTED:
        return
    what = f"the {ecu_label} rejected the enabling code for {name} (0x{app_id:04X})"
    agrees = check is not None and check.status is status
    if status is FscStatus.REJECTED:
        reason = check.reason if check is not None and agrees else "it was issued for another VIN"
        advice = "request a code for this vehicle"
    else:
        reason = check.reason if check is not None and agrees else _ALTERED
        advice = "request it again"
    raise FscRefused(f"{what}: {reason}; {advice}", app_id=app_id, status=int(status))


async def read_fsc_records(client: UdsClient) -> list[bytes]:
    """Read every accepted code the ECU stores (DID 0x1041): the backup before replacement.

    Needs the ECU's application (the bootloader keeps no codes); any session will do.

    Returns:
        The 93-byte records, in the ECU's order; empty if it stores none.

    Raises:
        UnexpectedResponse: the answer is not a whole number of FSC records.
        NegativeResponse: the ECU refused the read (no FSC support, bootloader running).
        LinkError: the link failed.
    """
    data = await client.read_did(Did.FSC_RECORDS)
    try:
        codes = decode_records(data)
    except ParseError as exc:
        raise UnexpectedResponse(
            f"ECU 0x{client.target:02X} answered DID 0x{Did.FSC_RECORDS:04X} with no FSC "
            f"records: {exc}"
        ) from exc
    return [code.encode() for code in codes]


async def read_fsc_status(client: UdsClient) -> dict[int, tuple[int, FscStatus]]:
    """Read the ECU's verdict per application (DID 0x1042).

    Returns:
        ``{app_id: (upgrade_index, status)}`` for every application the ECU has a code
        for, written or installed at the factory.

    Raises:
        UnexpectedResponse: the answer does not decode.
        NegativeResponse: the ECU refused the read.
        LinkError: the link failed.
    """
    data = await client.read_did(Did.FSC_STATUS)
    try:
        entries = decode_status(data)
    except ParseError as exc:
        raise UnexpectedResponse(
            f"ECU 0x{client.target:02X} answered DID 0x{Did.FSC_STATUS:04X} with no FSC "
            f"status: {exc}"
        ) from exc
    return {e.app_id: (e.upgrade_index, e.status) for e in entries}


async def write_fsc(
    client: UdsClient,
    record: bytes,
    *,
    security_algorithm: str | KeyAlgorithm,
    secret: bytes,
) -> FscStatus:
    """Write one code and return the ECU's verdict on it.

    Enters the extended session, unlocks security level 0x01 with the ECU's algorithm and
    secret (:class:`~ecuworks.pdata.model.EcuInfo` has both), writes DID 0x1041, reads
    DID 0x1042, and returns to the default session.

    Args:
        client: the ECU's client.
        record: the 93-byte code.
        security_algorithm: the ECU's key algorithm (name or function).
        secret: the ECU's security secret.

    Returns:
        The ECU's status for the code's application: pass it to :func:`ensure_accepted`.

    Raises:
        ParseError: ``record`` is no FSC record; nothing was sent.
        UnexpectedResponse: the status does not list the code after the write.
        NegativeResponse: the ECU refused a request (session, security, the write).
        LinkError: the link failed.
    """
    code = Fsc.decode(record)
    verdicts = await write_fscs(
        client, [record], security_algorithm=security_algorithm, secret=secret
    )
    return verdicts[code.app_id]


async def write_fscs(
    client: UdsClient,
    records: Iterable[bytes],
    *,
    security_algorithm: str | KeyAlgorithm,
    secret: bytes,
) -> dict[int, FscStatus]:
    """Write several codes in one session (a restore after replacement) and read verdicts.

    As :func:`write_fsc`, once for all of them; the ECU's status of an application is that
    of the last code written for it.

    Returns:
        ``{app_id: status}`` for each application written.

    Raises:
        ParseError: a record is no FSC record; nothing was sent.
        UnexpectedResponse: the status does not list a code written, or lists another
            upgrade index.
        NegativeResponse: the ECU refused a request.
        LinkError: the link failed.
    """
    records = list(records)
    codes = [Fsc.decode(record) for record in records]
    await client.change_session(Session.EXTENDED)
    await client.security_access(CODING_LEVEL, security_algorithm, secret)
    for record in records:
        await client.write_did(Did.FSC_RECORDS, record)
    statuses = await read_fsc_status(client)
    await client.change_session(Session.DEFAULT)
    verdicts: dict[int, FscStatus] = {}
    # The status shows the last code written per application.
    for code in {c.app_id: c for c in codes}.values():
        entry = statuses.get(code.app_id)
        if entry is None or entry[0] != code.upgrade_index:
            shown = "no status" if entry is None else f"upgrade index {entry[0]}"
            raise UnexpectedResponse(
                f"ECU 0x{client.target:02X} shows {shown} for application "
                f"0x{code.app_id:04X} after the code with upgrade index "
                f"{code.upgrade_index} was written; read its status and write the code again"
            )
        verdicts[code.app_id] = entry[1]
    return verdicts
