"""How a simulated ECU judges an enabling code (FSC) written to it.

The ECU trusts one Ed25519 public key, the vehicle's ``fsc_public_key`` (the backend's
issuer). It checks the signature first, so a code altered in any byte is ``INVALID``;
a genuine code for another VIN is ``REJECTED``; only a genuine code for its own VIN is
``ACCEPTED`` and stored. This is the ECU's side, written apart from the workstation's
check in ``ecuworks.enabling`` on purpose: the two must agree without sharing code.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ecuworks.wire.fsc import Fsc, FscStatus

__all__ = ["judge"]


def judge(record: bytes, *, public_key: bytes | None, vin: str) -> tuple[Fsc, FscStatus]:
    """Decode a code and give the ECU's verdict on it.

    Args:
        record: the record as written (DID 0x1041).
        public_key: the raw Ed25519 key the ECU trusts; None trusts nothing.
        vin: the vehicle's VIN.

    Returns:
        The decoded code and the verdict.

    Raises:
        ParseError: the record is no FSC record (the ECU answers NRC 0x13).
    """
    code = Fsc.decode(record)
    if public_key is None or not _verifies(code, public_key):
        return code, FscStatus.INVALID
    if code.vin != vin:
        return code, FscStatus.REJECTED
    return code, FscStatus.ACCEPTED


def _verifies(code: Fsc, public_key: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(code.signature, code.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True
