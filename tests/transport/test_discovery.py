"""DoIP discovery by UDP unicast against an entity answering on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import cast

import pytest

from ecuworks.errors import ConfigError, LinkError, LinkTimeout
from ecuworks.transport.discovery import entity_status, identify, power_mode
from ecuworks.wire.doip import (
    EntityStatusRequest,
    EntityStatusResponse,
    GenericNack,
    HeaderNackCode,
    NodeType,
    PowerMode,
    PowerModeRequest,
    PowerModeResponse,
    VehicleAnnouncement,
    VehicleIdentificationRequest,
    VehicleIdentificationRequestEid,
    VehicleIdentificationRequestVin,
    parse,
)

VIN = "WBA8E1C50JK000001"
GATEWAY = VehicleAnnouncement(
    vin=VIN, logical_address=0x0010, eid=bytes.fromhex("001a37000001"), gid=bytes(6)
)
# A second entity behind the same address (e.g. a head unit with its own DoIP stack).
HEAD_UNIT = VehicleAnnouncement(
    vin=VIN, logical_address=0x0063, eid=bytes.fromhex("001a37000063"), gid=bytes(6)
)
STATUS = EntityStatusResponse(
    node_type=NodeType.GATEWAY, max_sockets=4, open_sockets=1, max_data_size=0x10000
)


class _Entity(asyncio.DatagramProtocol):
    """Answers DoIP UDP requests the way a gateway with ``entities`` behind it would."""

    def __init__(self, entities: list[VehicleAnnouncement], silent: bool, nack: bool) -> None:
        self.entities = entities
        self.silent = silent
        self.nack = nack
        self.requests: list[object] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self.transport is not None
        request = parse(data)
        self.requests.append(request)
        if self.silent:
            return
        if self.nack:
            self.transport.sendto(GenericNack(code=HeaderNackCode.OUT_OF_MEMORY).encode(), addr)
            return
        answers: list[bytes] = []
        if isinstance(request, VehicleIdentificationRequest):
            answers = [entity.encode() for entity in self.entities]
        elif isinstance(request, VehicleIdentificationRequestVin):
            answers = [entity.encode() for entity in self.entities if entity.vin == request.vin]
        elif isinstance(request, VehicleIdentificationRequestEid):
            answers = [entity.encode() for entity in self.entities if entity.eid == request.eid]
        elif isinstance(request, EntityStatusRequest):
            answers = [STATUS.encode()]
        elif isinstance(request, PowerModeRequest):
            answers = [PowerModeResponse(mode=PowerMode.READY).encode()]
        for answer in [b"not doip", *answers]:  # a stray datagram first: must be ignored
            self.transport.sendto(answer, addr)


@pytest.fixture
async def entity(request: pytest.FixtureRequest) -> AsyncIterator[tuple[_Entity, int]]:
    options = getattr(request, "param", {})
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Entity(
            options.get("entities", [GATEWAY]),
            silent=options.get("silent", False),
            nack=options.get("nack", False),
        ),
        local_addr=("127.0.0.1", 0),
    )
    port = transport.get_extra_info("sockname")[1]
    yield protocol, port
    transport.close()
    await protocol.closed.wait()


async def test_identify_returns_the_announcement(entity: tuple[_Entity, int]) -> None:
    responder, port = entity
    # expected=1 (default) returns at the first answer, long before the 30 s window.
    assert await asyncio.wait_for(identify("127.0.0.1", port, timeout=30), 5) == [GATEWAY]
    assert responder.requests == [VehicleIdentificationRequest()]


async def test_identify_by_vin_and_by_eid(entity: tuple[_Entity, int]) -> None:
    responder, port = entity
    assert await identify("127.0.0.1", port, vin=VIN, timeout=5) == [GATEWAY]
    assert await identify("127.0.0.1", port, eid=GATEWAY.eid, timeout=5) == [GATEWAY]
    assert responder.requests == [
        VehicleIdentificationRequestVin(vin=VIN),
        VehicleIdentificationRequestEid(eid=GATEWAY.eid),
    ]


async def test_identify_for_another_vin_times_out(entity: tuple[_Entity, int]) -> None:
    _, port = entity
    with pytest.raises(LinkTimeout, match=r"127\.0\.0\.1:\d+ .*simulator running"):
        await identify("127.0.0.1", port, vin="WBA00000000000000", timeout=0.2)


@pytest.mark.parametrize("entity", [{"entities": [GATEWAY, HEAD_UNIT]}], indirect=True)
async def test_identify_collects_every_entity_until_the_window_closes(
    entity: tuple[_Entity, int],
) -> None:
    _, port = entity
    assert await identify("127.0.0.1", port, timeout=0.2, expected=None) == [GATEWAY, HEAD_UNIT]
    assert await identify("127.0.0.1", port, timeout=30, expected=2) == [GATEWAY, HEAD_UNIT]


async def test_entity_status_and_power_mode(entity: tuple[_Entity, int]) -> None:
    _, port = entity
    assert await entity_status("127.0.0.1", port, timeout=5) == STATUS
    assert await power_mode("127.0.0.1", port, timeout=5) == PowerModeResponse(mode=PowerMode.READY)


@pytest.mark.parametrize("entity", [{"silent": True}], indirect=True)
async def test_silent_entity_times_out(entity: tuple[_Entity, int]) -> None:
    _, port = entity
    with pytest.raises(LinkTimeout, match="EntityStatusResponse"):
        await entity_status("127.0.0.1", port, timeout=0.1)
    with pytest.raises(LinkTimeout, match="PowerModeResponse"):
        await power_mode("127.0.0.1", port, timeout=0.1)


@pytest.mark.parametrize("entity", [{"nack": True}], indirect=True)
async def test_rejected_request_is_a_link_error(entity: tuple[_Entity, int]) -> None:
    _, port = entity
    with pytest.raises(LinkError, match="rejected the request: out of memory"):
        await entity_status("127.0.0.1", port, timeout=5)


async def test_nothing_listening_is_reported_at_once() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Loopback answers with ICMP port unreachable, which the connected socket reports.
    with pytest.raises(LinkError, match="no DoIP entity"):
        await asyncio.wait_for(identify("127.0.0.1", port, timeout=30), 5)


@pytest.mark.parametrize("host", ["255.255.255.255", "224.0.0.1", "239.255.0.1", "ff02::1"])
async def test_broadcast_and_multicast_destinations_are_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="unicast only"):
        await identify(host, 13400, timeout=0.1)
    with pytest.raises(ConfigError, match="unicast only"):
        await entity_status(host, 13400, timeout=0.1)
