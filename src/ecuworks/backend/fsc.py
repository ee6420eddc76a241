"""Issuing enabling codes (FSC): the backend signs a record bound to VIN, app and index.

A code is the 93-byte record of :mod:`ecuworks.wire.fsc`, signed with the issuer's Ed25519
private key; the vehicle's ECUs hold the matching public key and accept only codes that
verify with it and name their VIN.

**The demo key is public.** :meth:`FscIssuer.demo` derives its private key from a fixed
string (``sha256(b"ecuworks/demo/fsc-issuer")``), so anyone can derive it and issue codes
the simulated vehicles accept. That is its purpose: the shipped vehicle profiles trust it
(their ``fsc_public_key``), and the command line issues codes with it in-process until the
backend's HTTP service exists. A real backend generates and guards its own key
(``FscIssuer(Ed25519PrivateKey.generate())``) and never uses the demo one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ecuworks.enabling.fsc import FscSource
from ecuworks.wire.fsc import SIGNATURE_LENGTH, Fsc

__all__ = ["DEMO_SEED", "FscIssuer"]

# The demo issuer's private key is sha256 of this: public knowledge, see the module doc.
DEMO_SEED = b"ecuworks/demo/fsc-issuer"


class FscIssuer:
    """Signs enabling codes with one Ed25519 private key.

    Args:
        private_key: the issuer's key; its public half is what the ECUs trust.
    """

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def demo(cls) -> FscIssuer:
        """Return the demo issuer, whose key anyone can derive (see the module docstring).

        The shipped simulated vehicles trust it; a real backend must not use it.
        """
        seed = hashlib.sha256(DEMO_SEED).digest()
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public_key_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 public key, as a vehicle profile's ``fsc_public_key``."""
        return self._public

    @property
    def public_key_hex(self) -> str:
        """:attr:`public_key_bytes` as lower-case hex."""
        return self._public.hex()

    def issue(self, vin: str, app_id: int, upgrade_index: int, *, issued: int) -> bytes:
        """Issue the code that unlocks ``app_id`` at ``upgrade_index`` on vehicle ``vin``.

        Args:
            vin: the vehicle, 17 ASCII characters.
            app_id: the application (function) to unlock, 0-0xFFFF.
            upgrade_index: its upgrade index, 0-0xFFFF.
            issued: the issue time, Unix seconds (32 bits); passed in, so that a code
                issued twice with the same time is the same bytes (Ed25519 is
                deterministic).

        Returns:
            The 93-byte record to write to the ECU.

        Raises:
            ConfigError: a value does not fit the record.
        """
        unsigned = Fsc(
            vin=vin,
            app_id=app_id,
            upgrade_index=upgrade_index,
            issued=issued,
            signature=bytes(SIGNATURE_LENGTH),
        )
        signature = self._key.sign(unsigned.signed_bytes())
        return dataclasses.replace(unsigned, signature=signature).encode()

    def source(self, *, clock: Callable[[], float] = time.time) -> FscSource:
        """Return this issuer as an :data:`~ecuworks.enabling.fsc.FscSource`.

        Each call issues a fresh code stamped with ``clock()`` (whole seconds): what the
        execute layer and the command line call to obtain codes without importing the
        backend.
        """

        async def issue(vin: str, app_id: int, upgrade_index: int, /) -> bytes:
            return self.issue(vin, app_id, upgrade_index, issued=int(clock()))

        return issue
