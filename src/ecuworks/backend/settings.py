"""What the central backend is started with, and the FSC issuer it signs codes with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ecuworks.backend.fsc import FscIssuer
from ecuworks.errors import ConfigError

__all__ = ["BackendSettings", "load_issuer"]


@dataclass(frozen=True, kw_only=True)
class BackendSettings:
    """The backend's settings.

    Attributes:
        db_url: the database URL (``postgresql://...`` in production, ``sqlite:///...``
            for the embedded demo).
        pdata_repo: a published P-Data TUF repository directory, served as static files
            under ``/pdata/``; None serves none.
        issuer_key: a PEM file with the Ed25519 private key that signs enabling codes;
            None uses the demo key, which anyone can derive (see :mod:`.fsc`).
        secure_cookies: mark the report pages' cookies Secure (behind HTTPS); off on
            loopback, where there is no HTTPS.
    """

    db_url: str
    pdata_repo: Path | None = None
    issuer_key: Path | None = None
    secure_cookies: bool = False


def load_issuer(key_file: Path | None) -> FscIssuer:
    """The issuer of ``key_file`` (PEM, unencrypted Ed25519), or the demo issuer for None.

    Raises:
        ConfigError: the file cannot be read or holds no Ed25519 private key.
    """
    if key_file is None:
        return FscIssuer.demo()
    try:
        key = load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(
            f"cannot read the issuer key {key_file} ({error}); give an unencrypted PEM "
            "Ed25519 private key, e.g. made with 'openssl genpkey -algorithm ed25519'"
        ) from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"the issuer key {key_file} is not an Ed25519 key; the vehicles verify Ed25519 only"
        )
    return FscIssuer(key)
