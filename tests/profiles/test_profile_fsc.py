"""Enabling codes in vehicle profiles: the trusted key, factory codes, and clear errors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.profiles.test_profiles import MINI

from ecuworks.backend.fsc import FscIssuer
from ecuworks.errors import ConfigError
from ecuworks.profiles import parse_profile
from ecuworks.sim.state import VehicleState
from ecuworks.wire.fsc import FscStatus

VIN = "WBA8E9C50GK123456"
ISSUER = FscIssuer.demo()
KEY_LINE = f'fsc_public_key = "{ISSUER.public_key_hex}"\n'


def profile_text(*records: bytes | str, key_line: str = KEY_LINE) -> str:
    """MINI with a trusted key and the DME holding ``records`` (bytes are hex-encoded)."""
    shown = ", ".join(f'"{r.hex() if isinstance(r, bytes) else r}"' for r in records)
    text = MINI.replace("size_scale = 1.0\n", f"size_scale = 1.0\n{key_line}", 1)
    return text.replace("dtcs = [0x12A5B0]\n", f"dtcs = [0x12A5B0]\nfsc = [{shown}]\n", 1)


def test_factory_codes_load_and_the_ecu_starts_with_them_accepted() -> None:
    records = [ISSUER.issue(VIN, app, 1, issued=0) for app in (0x41, 0x61)]
    profile = parse_profile(profile_text(*records), source="mini.toml")
    assert profile.fsc_public_key == ISSUER.public_key_bytes
    assert profile.ecu(0x12).fsc == tuple(records)
    dme = VehicleState.from_profile(profile).ecus[0x12]
    assert dme.fsc_status == {0x41: (1, FscStatus.ACCEPTED), 0x61: (1, FscStatus.ACCEPTED)}
    assert dme.to_json()["fsc"] == [
        {"app_id": 0x41, "upgrade_index": 1, "status": "accepted"},
        {"app_id": 0x61, "upgrade_index": 1, "status": "accepted"},
    ]


def test_without_a_key_the_vehicle_trusts_none_and_holds_no_codes() -> None:
    profile = parse_profile(MINI)
    assert profile.fsc_public_key is None
    assert all(e.fsc == () for e in profile.ecus)
    assert VehicleState.from_profile(profile).to_json()["fsc_public_key"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            profile_text("zz"),
            r"mini.toml: ecus\[1\] \(DME, 0x12\): fsc\[0\]: 'zz' is not hex bytes",
        ),
        (profile_text("00 01"), r"ecus\[1\] \(DME, 0x12\): fsc\[0\]: .*93 bytes, got 2"),
        (
            profile_text(ISSUER.issue("WBA5R7C08MFK12345", 0x41, 1, issued=0)),
            r"DME \(0x12\): fsc\[0\] \(application 0x0041\): issued for VIN WBA5R7C08MFK12345, "
            "the vehicle is WBA8E9C50GK123456",
        ),
        (
            profile_text(FscIssuer(Ed25519PrivateKey.generate()).issue(VIN, 0x41, 1, issued=0)),
            r"fsc\[0\] \(application 0x0041\): its signature does not verify with fsc_public_key",
        ),
        (
            profile_text(ISSUER.issue(VIN, 0x41, 1, issued=0), key_line=""),
            "the vehicle has no fsc_public_key to verify it",
        ),
        (
            profile_text(key_line='fsc_public_key = "0011"\n'),
            "fsc_public_key must be a raw Ed25519 public key of 32 bytes, got 2 bytes",
        ),
        (
            profile_text(key_line='fsc_public_key = "xy"\n'),
            "mini.toml: fsc_public_key: 'xy' is not hex bytes",
        ),
        (
            profile_text(
                ISSUER.issue(VIN, 0x41, 1, issued=0), ISSUER.issue(VIN, 0x41, 2, issued=0)
            ),
            r"fsc\[1\]: a second code for application 0x0041",
        ),
    ],
)
def test_bad_codes_and_keys_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_profile(text, source="mini.toml")
