"""What the simulator's protocol servers share: lifecycle, background tasks, the drop fault.

The DoIP and HSFZ servers differ in their protocols, not in how they stop, track the tasks
they spawn for ECU exchanges, or cut a connection for the ``drop`` fault.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Protocol, Self, cast

from ecuworks.errors import ParseError
from ecuworks.sim.router import Router

__all__ = ["DatagramResponder", "DropBudget", "ProtocolServer", "RequestChains"]

_log = logging.getLogger(__name__)


class DropBudget:
    """The ``drop`` fault: cut the tester connection that sends the next N bytes.

    One budget per vehicle, shared by its servers: the fault cuts one connection, whichever
    protocol it speaks.
    """

    def __init__(self) -> None:
        self._budget: int | None = None

    def arm(self, n_bytes: int | None) -> None:
        """Cut after ``n_bytes`` more received bytes; ``None`` disarms."""
        self._budget = n_bytes

    def cut_point(self, size: int) -> int | None:
        """Count ``size`` received bytes against the fault.

        Returns:
            How many of them to handle before cutting the connection, or None to handle
            all of them and not cut.
        """
        budget = self._budget
        if budget is None:
            return None
        if size < budget:
            self._budget = budget - size
            return None
        self._budget = None
        return budget


class _Abortable(Protocol):
    def abort(self) -> None: ...


class ProtocolServer:
    """Base of a TCP + UDP protocol server of the simulated gateway.

    Subclasses open ``_server`` and ``_udp`` in ``start()`` and keep their tester
    connections in :attr:`connections`.

    Args:
        drops: the vehicle's drop fault (a private one when not given).
    """

    protocol = "protocol"  # for log messages: "DoIP", "HSFZ"

    def __init__(self, *, drops: DropBudget | None = None) -> None:
        self.drops = drops if drops is not None else DropBudget()
        self.connections: set[Any] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._udp: asyncio.BaseTransport | None = None

    async def start(self) -> None:
        """Open the sockets."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop listening, close every tester socket and stop every ECU task."""
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
        connection: _Abortable
        for connection in list(self.connections):
            connection.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._server = self._udp = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- faults ----------------------------------------------------------------------------

    def drop_after(self, n_bytes: int | None) -> None:
        """Cut the tester connection that sends the next ``n_bytes`` bytes (abort, RST).

        The bytes up to the cut are handled as usual; their answers are lost. One-shot;
        ``None`` disarms.
        """
        self.drops.arm(n_bytes)

    def cut_point(self, size: int) -> int | None:
        """Count ``size`` received bytes against the drop fault (see :class:`DropBudget`)."""
        return self.drops.cut_point(size)

    # -- tasks -----------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task the server cancels on close."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("%s server task failed", self.protocol, exc_info=task.exception())


class RequestChains:
    """Route one tester connection's requests: in order per ECU, concurrently across ECUs.

    A UDS server answers one request at a time, so a tester's requests to one address wait
    for the previous one to be answered; a slow ECU never holds back another's answers.

    Args:
        server: spawns (and on close cancels) the routing tasks.
        send: writes one answer frame to the tester.
        encode: the protocol's frame for an answer: ``encode(ecu, tester, answer)``.
    """

    def __init__(
        self,
        server: ProtocolServer,
        send: Callable[[bytes], None],
        encode: Callable[[int, int, bytes], bytes],
    ) -> None:
        self._server = server
        self._send = send
        self._encode = encode
        self._chains: dict[int, asyncio.Task[None]] = {}  # ECU -> its latest request

    def submit(
        self, router: Router, tester: int, target: int, payload: bytes, *, functional: bool
    ) -> None:
        """Route ``payload`` once the previous request to ``target`` is answered."""
        previous = self._chains.get(target)
        task = self._server.spawn(
            self._serve(router, tester, target, payload, functional=functional, previous=previous)
        )
        self._chains[target] = task
        task.add_done_callback(lambda done: self._done(target, done))

    def _done(self, target: int, task: asyncio.Task[None]) -> None:
        if self._chains.get(target) is task:
            del self._chains[target]

    async def _serve(
        self,
        router: Router,
        tester: int,
        target: int,
        payload: bytes,
        *,
        functional: bool,
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        if functional:
            async for ecu, answer in router.functional(payload):
                if answer:
                    self._send(self._encode(ecu, tester, answer))
        else:
            async for answer in router.request(target, payload):
                if answer:
                    self._send(self._encode(target, tester, answer))


class DatagramResponder(asyncio.DatagramProtocol):
    """A UDP port that answers each datagram, at most once, to its sender.

    Args:
        answer: the answer to one datagram, or None for none; raising
            :class:`~ecuworks.errors.ParseError` also means none.
        protocol: for log messages (``"DoIP"``).
    """

    def __init__(self, answer: Callable[[bytes], bytes | None], protocol: str) -> None:
        self._answer = answer
        self._protocol = protocol
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            answer = self._answer(data)
        except ParseError:
            return  # garbage: the protocol has no answer for it
        except Exception:  # a bad datagram must never stop the port
            _log.exception("%s UDP: could not answer %s", self._protocol, data[:32].hex())
            return
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)

    def error_received(self, exc: Exception) -> None:
        _log.debug("%s UDP: %s", self._protocol, exc)  # e.g. ICMP from a tester gone
