"""Ed25519 signing keys for the P-Data repository, kept as files.

Layout of a key directory (one sub-directory per role, one pair of files per key)::

    keys/
      root/<keyid>.pem          PKCS#8 private key (PEM, unencrypted: demo only)
      root/<keyid>.pub.json     the public key as TUF writes it: {"keyid": ..., "keytype": ...}
      targets/...  snapshot/...  timestamp/...  <series>/...

Root and targets keys are meant to live offline (an air-gapped machine or a hardware
token); only snapshot and timestamp keys need to be on the server that publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey

from ecuworks.errors import ConfigError
from ecuworks.pdata._atomic import write_atomic

__all__ = ["TOP_LEVEL_ROLES", "KeyRing"]

TOP_LEVEL_ROLES = ("root", "targets", "snapshot", "timestamp")


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The signing keys of a repository, by role name (top-level roles and series).

    Attributes:
        signers: the signers of each role; a role may have several keys (thresholds).
    """

    signers: Mapping[str, tuple[CryptoSigner, ...]]

    @classmethod
    def generate(cls, roles: Iterable[str], *, count: Mapping[str, int] | None = None) -> KeyRing:
        """Make fresh Ed25519 keys.

        Args:
            roles: role names, e.g. ``TOP_LEVEL_ROLES`` plus one name per series.
            count: keys per role where more than one is wanted (default 1).

        Returns:
            A new key ring.
        """
        count = count or {}
        return cls(
            {
                role: tuple(CryptoSigner.generate_ed25519() for _ in range(count.get(role, 1)))
                for role in roles
            }
        )

    def for_role(self, role: str) -> tuple[CryptoSigner, ...]:
        """Return the signers of ``role``.

        Raises:
            ConfigError: the key ring holds no key for that role.
        """
        signers = self.signers.get(role, ())
        if not signers:
            raise ConfigError(f"no signing key for role {role!r}: generate or load one first")
        return signers

    def replace(self, role: str, signers: Iterable[CryptoSigner]) -> KeyRing:
        """Return a key ring where ``role`` has ``signers`` instead of its keys."""
        return KeyRing({**self.signers, role: tuple(signers)})

    def save(self, directory: Path) -> None:
        """Write every key as ``<directory>/<role>/<keyid>.pem`` and ``.pub.json``."""
        for role, signers in self.signers.items():
            for signer in signers:
                key = signer.public_key
                base = directory / role / key.keyid
                write_atomic(base.with_suffix(".pem"), signer.private_bytes, mode=0o600)
                public = json.dumps({"keyid": key.keyid, **key.to_dict()}, indent=2)
                write_atomic(base.with_suffix(".pub.json"), public.encode())

    @classmethod
    def load(cls, directory: Path) -> KeyRing:
        """Read a key directory written by :meth:`save`.

        Raises:
            ConfigError: a key file is missing, unreadable or does not match its public key.
        """
        signers: dict[str, tuple[CryptoSigner, ...]] = {}
        for role_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
            signers[role_dir.name] = tuple(
                _load_signer(pem) for pem in sorted(role_dir.glob("*.pem"))
            )
        return cls(signers)


def _load_signer(pem: Path) -> CryptoSigner:
    """Load one private key and its public key JSON beside it."""
    public_path = pem.with_suffix(".pub.json")
    try:
        private = load_pem_private_key(pem.read_bytes(), password=None)
        public = json.loads(public_path.read_text())
        keyid = public.pop("keyid")
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigError(f"{pem}: not an Ed25519 key")
        return CryptoSigner(private, SSlibKey.from_dict(keyid, public))
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot load signing key {pem}: {exc}") from exc
