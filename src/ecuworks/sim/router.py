"""The seam between the simulator's protocol servers and what stands behind them.

The DoIP and HSFZ servers only move bytes and apply their protocol's rules; which ECUs
exist, what they answer and how long it takes is the :class:`Router`'s business (the
gateway in ``sim/gateway.py`` implements it over the bus and ECU models, docs/adr/0003).
:class:`StaticRouter` answers from a table, for tests and small demos.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Final, Protocol, runtime_checkable

from ecuworks.errors import ConfigError
from ecuworks.wire.doip import PowerMode

__all__ = ["Router", "StaticRouter"]


@runtime_checkable
class Router(Protocol):
    """What a protocol server needs from the vehicle behind it.

    The identification fields are read-only properties here so that an implementation may
    keep them as plain attributes or compute them.
    """

    @property
    def vin(self) -> str:
        """The vehicle's 17-character VIN."""
        ...

    @property
    def eid(self) -> bytes:
        """The gateway's entity id: its 6-byte MAC address."""
        ...

    @property
    def gid(self) -> bytes:
        """The 6-byte DoIP group id."""
        ...

    @property
    def logical_address(self) -> int:
        """The gateway's own address (DoIP logical address, HSFZ diagnostic address)."""
        ...

    def knows(self, target: int) -> bool:
        """Whether a physically addressed request to ``target`` can be routed."""
        ...

    def request(self, target: int, payload: bytes) -> AsyncIterator[bytes]:
        """Route one physical request; yields the ECU's answers (none when it is silent)."""
        ...

    def functional(self, payload: bytes) -> AsyncIterator[tuple[int, bytes]]:
        """Route one functional request; yields ``(ecu address, answer)`` pairs."""
        ...

    def power_mode(self) -> int:
        """The DoIP diagnostic power mode byte (:class:`~ecuworks.wire.doip.PowerMode`)."""
        ...


# A made-up F-series car: the demo VIN is check-digit free on purpose (not a real vehicle).
_DEMO_VIN: Final = "WBAEW000000000001"
_DEMO_EID: Final = bytes.fromhex("001A37000001")
_DEMO_GID: Final = bytes(6)
_SERVICE_NOT_SUPPORTED: Final = 0x11  # ISO 14229-1, table A.1


def _refusal(payload: bytes) -> bytes:
    """``7F <sid> 11``: what an ECU answers to a request missing from its table."""
    return bytes([0x7F, payload[0] if payload else 0x00, _SERVICE_NOT_SUPPORTED])


class StaticRouter:
    """A :class:`Router` that answers from a table: ``{ecu: {request: [answers]}}``.

    A request missing from an ECU's table is answered ``7F <sid> 11`` (service not
    supported) physically and not at all functionally (ISO 14229-1 suppresses that NRC
    for functional requests). Tests steer it through three attributes:

    - ``gates``: an ECU with an event here waits for the event before each answer, so a
      test can hold one ECU back and release it when it chooses;
    - ``silent``: ECUs that take requests and never answer;
    - ``requests``: every ``(target, payload)`` routed so far, functional ones with the
      target ``None``, in arrival order.

    Args:
        answers: the table; its keys are the ECUs the router knows.
        vin: the VIN for identification.
        eid: the 6-byte entity id (MAC address).
        gid: the 6-byte group id.
        logical_address: the gateway's own address.
        power_mode: the DoIP power mode byte to report.

    Raises:
        ConfigError: the VIN is not 17 characters or EID/GID are not 6 bytes.
    """

    def __init__(
        self,
        answers: Mapping[int, Mapping[bytes, Sequence[bytes]]],
        *,
        vin: str = _DEMO_VIN,
        eid: bytes = _DEMO_EID,
        gid: bytes = _DEMO_GID,
        logical_address: int = 0x10,
        power_mode: int = PowerMode.READY,
    ) -> None:
        if len(vin) != 17 or len(eid) != 6 or len(gid) != 6:
            raise ConfigError("a router needs a 17-character VIN and a 6-byte EID and GID")
        self.answers = {ecu: dict(table) for ecu, table in answers.items()}
        self.vin = vin
        self.eid = eid
        self.gid = gid
        self.logical_address = logical_address
        self.mode = power_mode
        self.gates: dict[int, asyncio.Event] = {}
        self.silent: set[int] = set()
        self.requests: list[tuple[int | None, bytes]] = []

    def knows(self, target: int) -> bool:
        """Whether ``target`` is in the table."""
        return target in self.answers

    def power_mode(self) -> int:
        """The configured power mode byte."""
        return self.mode

    async def request(self, target: int, payload: bytes) -> AsyncIterator[bytes]:
        """Yield the table's answers of ``target`` to ``payload``."""
        self.requests.append((target, payload))
        table = self.answers.get(target, {})
        for answer in self._answers(target, table.get(payload, [_refusal(payload)])):
            await self._gate(target)
            yield answer

    async def functional(self, payload: bytes) -> AsyncIterator[tuple[int, bytes]]:
        """Yield the answers of every ECU whose table has ``payload``, by address."""
        self.requests.append((None, payload))
        for ecu in sorted(self.answers):
            for answer in self._answers(ecu, self.answers[ecu].get(payload, [])):
                await self._gate(ecu)
                yield ecu, answer

    def _answers(self, ecu: int, answers: Iterable[bytes]) -> Iterable[bytes]:
        return () if ecu in self.silent else answers

    async def _gate(self, ecu: int) -> None:
        gate = self.gates.get(ecu)
        if gate is not None:
            await gate.wait()
        else:
            await asyncio.sleep(0)  # an ECU answers later, never inside the request call
