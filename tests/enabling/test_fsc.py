"""Enabling codes end to end: the workstation's API against the simulated f-series.

Codes come from the backend's demo issuer, as the command line gets them until the
backend's HTTP service exists; the head unit (0x63) checks them with the key it trusts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import StartSimulator
from tests.sim.flashing import control, ecu_entry, flash, read_state

from ecuworks.backend.fsc import FscIssuer
from ecuworks.enabling import (
    FscCheck,
    ensure_accepted,
    read_fsc_records,
    read_fsc_status,
    verify_fsc,
    write_fsc,
    write_fscs,
)
from ecuworks.errors import FscRefused, ParseError, UdsError
from ecuworks.sim.simulator import Simulator
from ecuworks.transport.base import Link
from ecuworks.transport.url import open_link
from ecuworks.uds.client import UdsClient
from ecuworks.wire.fsc import FscStatus

HU = 0x63
HU_LABEL = "HU (0x63)"
NAVIGATION = "Navigation map update"
VIN = "WBA8E9C50GK123456"
OTHER_VIN = "WBA5R7C08MFK12345"
ISSUER = FscIssuer.demo()
KEY = ISSUER.public_key_bytes


@pytest.fixture
async def sim(start_simulator: StartSimulator) -> Simulator:
    return await start_simulator("f-series", time_scale=1000)


@pytest.fixture
async def link(sim: Simulator) -> AsyncIterator[Link]:
    async with open_link(f"hsfz://127.0.0.1:{sim.ports['hsfz']}") as opened:
        yield opened


def security(sim: Simulator) -> dict[str, Any]:
    """The HU's key algorithm and secret, as the P-Data's EcuInfo gives them."""
    ecu = sim.state.ecus[HU]
    return {"security_algorithm": ecu.security_algorithm, "secret": ecu.security_secret}


def flipped(record: bytes, offset: int) -> bytes:
    changed = bytearray(record)
    changed[offset] ^= 0x40
    return bytes(changed)


async def test_a_demo_issued_code_is_accepted(sim: Simulator, link: Link) -> None:
    client = UdsClient(link, HU)
    record = await ISSUER.source()(VIN, 0x41, 2)
    check = verify_fsc(record, KEY, VIN)
    assert check.accepted
    status = await write_fsc(client, record, **security(sim))
    assert status is FscStatus.ACCEPTED
    ensure_accepted(status, 0x41, NAVIGATION, HU_LABEL, check)
    assert (await read_fsc_status(client))[0x41] == (2, FscStatus.ACCEPTED)
    assert record in await read_fsc_records(client)
    state = await read_state(sim.ports["control"])
    assert {"app_id": 0x41, "upgrade_index": 2, "status": "accepted"} in ecu_entry(state, HU)["fsc"]


async def test_a_code_for_another_vin_is_rejected_naming_both_vins(
    sim: Simulator, link: Link
) -> None:
    client = UdsClient(link, HU)
    record = ISSUER.issue(OTHER_VIN, 0x41, 2, issued=1_700_000_000)
    check = verify_fsc(record, KEY, VIN)
    assert check.status is FscStatus.REJECTED
    status = await write_fsc(client, record, **security(sim))
    assert status is FscStatus.REJECTED
    with pytest.raises(FscRefused) as refused:
        ensure_accepted(status, 0x41, NAVIGATION, HU_LABEL, check)
    assert str(refused.value) == (
        "the HU (0x63) rejected the enabling code for Navigation map update (0x0041): it was "
        f"issued for VIN {OTHER_VIN}, this vehicle is {VIN}; request a code for this vehicle"
    )
    assert (refused.value.app_id, refused.value.status) == (0x41, FscStatus.REJECTED)
    assert isinstance(refused.value, UdsError)
    # The factory code stays in force.
    assert ISSUER.issue(VIN, 0x41, 1, issued=1_436_918_400) in await read_fsc_records(client)


@pytest.mark.parametrize("offset", [5, 30, 92], ids=["VIN", "signature", "last byte"])
async def test_a_changed_byte_is_invalid_because_the_signature_does_not_verify(
    sim: Simulator, link: Link, offset: int
) -> None:
    client = UdsClient(link, HU)
    record = flipped(ISSUER.issue(VIN, 0x41, 2, issued=1_700_000_000), offset)
    check = verify_fsc(record, KEY, VIN)
    assert check.status is FscStatus.INVALID
    status = await write_fsc(client, record, **security(sim))
    assert status is FscStatus.INVALID
    with pytest.raises(FscRefused, match="signature does not verify") as refused:
        ensure_accepted(status, 0x41, NAVIGATION, HU_LABEL, check)
    assert str(refused.value) == (
        "the HU (0x63) rejected the enabling code for Navigation map update (0x0041): its "
        "signature does not verify (the code was altered or not issued by the backend); "
        "request it again"
    )


async def test_a_code_from_another_issuer_is_invalid_locally_and_in_the_ecu(
    sim: Simulator, link: Link
) -> None:
    record = FscIssuer(Ed25519PrivateKey.generate()).issue(VIN, 0x50, 1, issued=0)
    assert verify_fsc(record, KEY, VIN).status is FscStatus.INVALID
    assert await write_fsc(UdsClient(link, HU), record, **security(sim)) is FscStatus.INVALID


async def test_backup_replace_restore_accepts_every_code_again(sim: Simulator, link: Link) -> None:
    port = sim.ports["control"]
    client = UdsClient(link, HU)
    added = ISSUER.issue(VIN, 0x50, 1, issued=1_700_000_000)
    assert await write_fsc(client, added, **security(sim)) is FscStatus.ACCEPTED
    backup = await read_fsc_records(client)
    assert len(backup) == 3
    before = await read_fsc_status(client)

    await control(port, "POST", f"/ecus/0x{HU:02X}/replace")
    assert ecu_entry(await read_state(port), HU)["fsc"] == []
    # The new part gets its software before anything else (SwDeploy before FscDeploy).
    await flash(link, ecu_entry(await read_state(port), HU), classes=("SWFL", "IBAD"))
    assert ecu_entry(await read_state(port), HU)["mode"] == "application"
    assert await read_fsc_records(client) == []

    verdicts = await write_fscs(client, backup, **security(sim))
    assert verdicts == {
        0x41: FscStatus.ACCEPTED,
        0x50: FscStatus.ACCEPTED,
        0x61: FscStatus.ACCEPTED,
    }
    assert await read_fsc_status(client) == before
    assert await read_fsc_records(client) == backup
    assert [e["status"] for e in ecu_entry(await read_state(port), HU)["fsc"]] == ["accepted"] * 3


async def test_a_record_that_is_no_code_is_refused_before_sending(
    sim: Simulator, link: Link
) -> None:
    with pytest.raises(ParseError, match="93 bytes"):
        await write_fsc(UdsClient(link, HU), b"FSC1", **security(sim))
    check = verify_fsc(b"FSC1", KEY, VIN)
    assert (check.status, check.code) == (FscStatus.INVALID, None)
    assert "no enabling code record" in check.reason
    assert sorted(await read_fsc_status(UdsClient(link, HU))) == [0x41, 0x61]


def test_verify_gives_reasons_a_technician_can_read() -> None:
    good = ISSUER.issue(VIN, 0x61, 1, issued=0)
    assert verify_fsc(good, KEY, VIN).reason == (
        f"it is signed by the issuer and issued for this vehicle ({VIN})"
    )
    other = verify_fsc(good, KEY, OTHER_VIN)
    assert other.reason == f"it was issued for VIN {VIN}, this vehicle is {OTHER_VIN}"
    assert verify_fsc(good, bytes(32), VIN).status is FscStatus.INVALID
    assert verify_fsc(good, b"short", VIN).status is FscStatus.INVALID


def test_ensure_accepted_without_a_local_check_still_says_what_to_do() -> None:
    ensure_accepted(FscStatus.ACCEPTED, 0x61, "Smartphone integration", HU_LABEL)
    with pytest.raises(FscRefused, match=r"\(0x0061\): it was issued for another VIN; request"):
        ensure_accepted(FscStatus.REJECTED, 0x61, "Smartphone integration", HU_LABEL)
    with pytest.raises(FscRefused, match=r"signature does not verify .*; request it again"):
        ensure_accepted(FscStatus.INVALID, 0x61, "Smartphone integration", HU_LABEL)
    # A local check that disagrees with the ECU does not lend its reason.
    accepted_here = FscCheck(status=FscStatus.ACCEPTED, reason="fine here", vin=VIN, code=None)
    with pytest.raises(FscRefused, match="another VIN"):
        ensure_accepted(FscStatus.REJECTED, 0x61, "Smartphone integration", HU_LABEL, accepted_here)
