"""The backend's FSC issuer: codes a vehicle's ECUs accept, and the demo key they trust."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ecuworks.backend.fsc import FscIssuer
from ecuworks.enabling.fsc import FscSource
from ecuworks.errors import ConfigError
from ecuworks.profiles import available_profiles, load_profile
from ecuworks.wire.fsc import Fsc

VIN = "WBA8E9C50GK123456"
# The raw public key of sha256(b"ecuworks/demo/fsc-issuer") as an Ed25519 private key.
DEMO_PUBLIC_KEY = "9d1077e2100173fa4e996101e1663ac0be19791efacb6263734afd73d7a4eedb"


def test_the_demo_key_is_the_documented_derivation() -> None:
    seed = hashlib.sha256(b"ecuworks/demo/fsc-issuer").digest()
    expected = FscIssuer(Ed25519PrivateKey.from_private_bytes(seed))
    assert FscIssuer.demo().public_key_bytes == expected.public_key_bytes
    assert FscIssuer.demo().public_key_hex == DEMO_PUBLIC_KEY
    assert len(FscIssuer.demo().public_key_bytes) == 32


def test_an_issued_code_is_bound_to_vin_app_and_index_and_verifies() -> None:
    issuer = FscIssuer.demo()
    record = issuer.issue(VIN, 0x0041, 3, issued=1_700_000_000)
    code = Fsc.decode(record)
    assert (code.vin, code.app_id, code.upgrade_index, code.issued) == (
        VIN,
        0x0041,
        3,
        1_700_000_000,
    )
    key = Ed25519PublicKey.from_public_bytes(issuer.public_key_bytes)
    key.verify(code.signature, code.signed_bytes())
    # Ed25519 is deterministic: the same request gives the same bytes.
    assert issuer.issue(VIN, 0x0041, 3, issued=1_700_000_000) == record


def test_another_key_does_not_verify_the_demo_codes() -> None:
    record = FscIssuer.demo().issue(VIN, 0x0041, 1, issued=0)
    code = Fsc.decode(record)
    other = FscIssuer(Ed25519PrivateKey.generate())
    assert other.public_key_bytes != FscIssuer.demo().public_key_bytes
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(other.public_key_bytes).verify(
            code.signature, code.signed_bytes()
        )


@pytest.mark.parametrize(
    ("vin", "app_id", "index", "issued"),
    [("WBA8E9C50GK12345", 1, 1, 0), (VIN, 0x10000, 1, 0), (VIN, 1, -1, 0), (VIN, 1, 1, 1 << 32)],
)
def test_values_that_do_not_fit_are_refused(vin: str, app_id: int, index: int, issued: int) -> None:
    with pytest.raises(ConfigError, match="FSC"):
        FscIssuer.demo().issue(vin, app_id, index, issued=issued)


async def test_the_issuer_is_a_source_of_fresh_codes() -> None:
    source: FscSource = FscIssuer.demo().source(clock=lambda: 1_800_000_000.7)
    code = Fsc.decode(await source(VIN, 0x0061, 2))
    assert (code.vin, code.app_id, code.upgrade_index, code.issued) == (
        VIN,
        0x0061,
        2,
        1_800_000_000,
    )


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_trusts_the_demo_key_and_its_codes_verify(name: str) -> None:
    profile = load_profile(name)
    issuer = FscIssuer.demo()
    assert profile.fsc_public_key == issuer.public_key_bytes
    key = Ed25519PublicKey.from_public_bytes(issuer.public_key_bytes)
    for ecu in profile.ecus:
        for code in ecu.fsc_codes():
            key.verify(code.signature, code.signed_bytes())
            assert code.vin == profile.vin


@pytest.mark.parametrize("name", ["f-series", "g-series"])
def test_the_head_unit_has_its_factory_codes(name: str) -> None:
    head_unit = load_profile(name).ecu(0x63)
    assert [(c.app_id, c.upgrade_index) for c in head_unit.fsc_codes()] == [
        (0x0041, 1),
        (0x0061, 1),
    ]
