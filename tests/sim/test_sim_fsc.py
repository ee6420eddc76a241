"""Enabling codes in the simulated ECU, over a real HSFZ link: verdicts, storage, replacement.

The head unit (0x63) of the f-series holds two codes from the factory (0x0041 and 0x0061).
A code is written with ``2E 1041`` in the extended or coding session; the ECU answers
positively and tells its verdict in DID 1042: accepted (stored), rejected (another VIN) or
invalid (the signature does not verify).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import StartSimulator
from tests.sim.flashing import control, ecu_entry, read_state

from ecuworks.backend.fsc import FscIssuer
from ecuworks.errors import NegativeResponse
from ecuworks.sim.simulator import Simulator
from ecuworks.transport.base import Link
from ecuworks.transport.url import open_link
from ecuworks.uds.client import UdsClient
from ecuworks.wire.fsc import FscStatus, decode_records, decode_status
from ecuworks.wire.uds import Did, Nrc, Session

HU = 0x63
VIN = "WBA8E9C50GK123456"
OTHER_VIN = "WBA5R7C08MFK12345"
ISSUER = FscIssuer.demo()
FACTORY = [
    {"app_id": 0x41, "upgrade_index": 1, "status": "accepted"},
    {"app_id": 0x61, "upgrade_index": 1, "status": "accepted"},
]


@pytest.fixture
async def sim(start_simulator: StartSimulator, tmp_path: Path) -> Simulator:
    return await start_simulator("f-series", time_scale=1000, state_file=tmp_path / "state.json")


@pytest.fixture
async def link(sim: Simulator) -> AsyncIterator[Link]:
    async with open_link(f"hsfz://127.0.0.1:{sim.ports['hsfz']}") as opened:
        yield opened


def hu_fsc(state: dict[str, Any]) -> list[dict[str, Any]]:
    entry: list[dict[str, Any]] = ecu_entry(state, HU)["fsc"]
    return entry


async def write(client: UdsClient, record: bytes, session: int = Session.EXTENDED) -> None:
    await client.change_session(session)
    await client.write_did(Did.FSC_RECORDS, record)


async def statuses(client: UdsClient) -> dict[int, tuple[int, FscStatus]]:
    entries = decode_status(await client.read_did(Did.FSC_STATUS))
    return {e.app_id: (e.upgrade_index, e.status) for e in entries}


async def stored(client: UdsClient) -> dict[int, bytes]:
    return {c.app_id: c.encode() for c in decode_records(await client.read_did(Did.FSC_RECORDS))}


async def test_the_factory_codes_are_stored_and_accepted(sim: Simulator, link: Link) -> None:
    client = UdsClient(link, HU)
    assert hu_fsc(await read_state(sim.ports["control"])) == FACTORY
    records = await stored(client)
    assert sorted(records) == [0x41, 0x61]
    assert records[0x41] == ISSUER.issue(VIN, 0x41, 1, issued=1_436_918_400)
    assert await statuses(client) == {
        0x41: (1, FscStatus.ACCEPTED),
        0x61: (1, FscStatus.ACCEPTED),
    }
    # An ECU without codes answers an empty record, not an NRC.
    assert await UdsClient(link, 0x12).read_did(Did.FSC_RECORDS) == b""
    assert await UdsClient(link, 0x12).read_did(Did.FSC_STATUS) == b""


@pytest.mark.parametrize("session", [Session.EXTENDED, Session.CODING])
async def test_a_valid_code_is_accepted_and_replaces_the_old_one(
    sim: Simulator, link: Link, session: int
) -> None:
    client = UdsClient(link, HU)
    newer = ISSUER.issue(VIN, 0x41, 2, issued=1_700_000_000)
    fresh = ISSUER.issue(VIN, 0x50, 1, issued=1_700_000_000)
    await write(client, newer, session)
    await client.write_did(Did.FSC_RECORDS, fresh)
    assert (await statuses(client))[0x41] == (2, FscStatus.ACCEPTED)
    records = await stored(client)
    assert records[0x41] == newer
    assert records[0x50] == fresh
    assert len(records) == 3
    assert hu_fsc(await read_state(sim.ports["control"])) == [
        {"app_id": 0x41, "upgrade_index": 2, "status": "accepted"},
        {"app_id": 0x50, "upgrade_index": 1, "status": "accepted"},
        {"app_id": 0x61, "upgrade_index": 1, "status": "accepted"},
    ]


async def test_a_code_for_another_vin_is_rejected_and_not_stored(
    sim: Simulator, link: Link
) -> None:
    client = UdsClient(link, HU)
    before = await stored(client)
    await write(client, ISSUER.issue(OTHER_VIN, 0x41, 2, issued=1_700_000_000))
    assert (await statuses(client))[0x41] == (2, FscStatus.REJECTED)
    assert await stored(client) == before
    assert hu_fsc(await read_state(sim.ports["control"]))[0] == {
        "app_id": 0x41,
        "upgrade_index": 2,
        "status": "rejected",
    }


@pytest.mark.parametrize(
    ("offset", "what"),
    [(60, "signature"), (26, "issue time"), (10, "VIN"), (92, "last signature byte")],
)
async def test_one_byte_changed_makes_the_code_invalid(
    sim: Simulator, link: Link, offset: int, what: str
) -> None:
    client = UdsClient(link, HU)
    record = bytearray(ISSUER.issue(VIN, 0x50, 1, issued=1_700_000_000))
    record[offset] ^= 0x01
    await write(client, bytes(record))
    assert (await statuses(client))[0x50] == (1, FscStatus.INVALID), what
    assert 0x50 not in await stored(client)
    assert {"app_id": 0x50, "upgrade_index": 1, "status": "invalid"} in hu_fsc(
        await read_state(sim.ports["control"])
    )


async def test_a_code_signed_by_another_key_is_invalid(link: Link) -> None:
    client = UdsClient(link, HU)
    forged = FscIssuer(Ed25519PrivateKey.generate()).issue(VIN, 0x50, 1, issued=0)
    await write(client, forged)
    assert (await statuses(client))[0x50] == (1, FscStatus.INVALID)


@pytest.mark.parametrize(
    "record",
    [b"\x00", ISSUER.issue(VIN, 0x41, 1, issued=0)[:-1], b"FSC2" + bytes(89), bytes(200)],
    ids=["one byte", "92 bytes", "wrong magic", "200 bytes"],
)
async def test_a_record_that_does_not_decode_is_nrc_0x13(link: Link, record: bytes) -> None:
    client = UdsClient(link, HU)
    await client.change_session(Session.EXTENDED)
    with pytest.raises(NegativeResponse) as refused:
        await client.write_did(Did.FSC_RECORDS, record)
    assert refused.value.nrc == Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT
    assert sorted(await statuses(client)) == [0x41, 0x61]


async def test_the_default_session_cannot_write_codes(link: Link) -> None:
    client = UdsClient(link, HU)
    with pytest.raises(NegativeResponse) as refused:
        await client.write_did(Did.FSC_RECORDS, ISSUER.issue(VIN, 0x50, 1, issued=0))
    assert refused.value.nrc == Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION


async def test_a_replaced_ecu_has_no_codes(sim: Simulator, link: Link) -> None:
    port = sim.ports["control"]
    await control(port, "POST", f"/ecus/0x{HU:02X}/replace")
    assert hu_fsc(await read_state(port)) == []
    assert ecu_entry(await read_state(port), HU)["fsc_records"] == []
    # The blank part runs its bootloader, which keeps no codes at all.
    with pytest.raises(NegativeResponse) as refused:
        await UdsClient(link, HU).read_did(Did.FSC_RECORDS)
    assert refused.value.nrc == Nrc.REQUEST_OUT_OF_RANGE


async def test_the_codes_survive_a_restart_from_the_state_file(
    sim: Simulator, link: Link, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    client = UdsClient(link, HU)
    fresh = ISSUER.issue(VIN, 0x50, 1, issued=1_700_000_000)
    await write(client, fresh)
    await client.write_did(Did.FSC_RECORDS, ISSUER.issue(OTHER_VIN, 0x61, 3, issued=0))
    before = await read_state(sim.ports["control"])  # saved before it is served
    again = await start_simulator("f-series", time_scale=1000, state_file=tmp_path / "state.json")
    after = await read_state(again.ports["control"])
    assert hu_fsc(after) == hu_fsc(before)
    assert ecu_entry(after, HU)["fsc_records"] == ecu_entry(before, HU)["fsc_records"]
    assert after["fsc_public_key"] == ISSUER.public_key_hex
    async with open_link(f"hsfz://127.0.0.1:{again.ports['hsfz']}") as other:
        reloaded = UdsClient(other, HU)
        assert (await stored(reloaded))[0x50] == fresh
        assert await statuses(reloaded) == {
            0x41: (1, FscStatus.ACCEPTED),
            0x50: (1, FscStatus.ACCEPTED),
            0x61: (3, FscStatus.REJECTED),
        }
