"""What the in-test DoIP and HSFZ gateways share: observation, waiting, lifecycle, answers.

Each server subclasses :class:`LoopbackTestServer` with its protocol only: how it starts
listening, handles a message, frames an answer and asks the tester whether it is alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from ssl import SSLContext
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

__all__ = ["Handler", "LogEntry", "LoopbackTestServer", "echo_handler"]

Handler = Callable[[int, bytes], Awaitable[Iterable[bytes]] | AsyncIterator[bytes]]
"""``handler(target, request)``: a coroutine returning the responses, or an async generator."""


async def echo_handler(target: int, request: bytes) -> list[bytes]:
    """Answer every request positively: service id + 0x40, then the request's parameters."""
    return [bytes([request[0] | 0x40]) + request[1:]]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One diagnostic request received (``"request"``) or response sent (``"response"``)."""

    kind: str
    target: int  # the ECU: the request's target, the response's source
    data: bytes


class PeerLike(Protocol):
    """One accepted tester connection, as the base needs it."""

    transport: asyncio.Transport
    received: list[Any]
    closed: asyncio.Event


P = TypeVar("P", bound=PeerLike)


class LoopbackTestServer(Generic[P]):
    """A gateway double on ``127.0.0.1``.

    Subclasses implement :meth:`_protocol`, :meth:`_frame_answer` and
    :meth:`_alive_check_request`, and set :attr:`_alive_reply`.
    """

    _alive_reply: type

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.peers: list[P] = []
        self.log: list[LogEntry] = []
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    async def start(self) -> Self:
        """Listen on ``127.0.0.1`` and an ephemeral port (TLS if :meth:`_tls` says so)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", 0, ssl=self._tls())
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def host(self) -> str:
        """The address it listens on."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The TCP port it listens (or, once closed, listened) on."""
        assert self._port is not None, "start() the server first"
        return self._port

    async def close(self) -> None:
        """Stop listening, drop every connection and cancel pending answers."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for peer in self.peers:
            peer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for peer in self.peers:
            await peer.closed.wait()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what tests observe and trigger ----------------------------------------------------

    @property
    def accepted(self) -> int:
        """How many TCP connections were accepted so far."""
        return len(self.peers)

    @property
    def peer(self) -> P:
        """The latest connection."""
        assert self.peers, "no tester has connected"
        return self.peers[-1]

    def requests(self, target: int | None = None) -> list[bytes]:
        """The diagnostic requests received so far, optionally for one target only."""
        return [
            e.data
            for e in self.log
            if e.kind == "request" and (target is None or e.target == target)
        ]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``condition()`` holds; it is checked after every server event."""
        if condition():
            return
        waiter = (condition, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter[1]
        finally:
            self._waiters.remove(waiter)

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are on the latest connection."""
        self.peer.transport.write(data)

    def drop(self) -> None:
        """Abort the latest connection, as a gateway that lost power would."""
        self.peer.transport.abort()

    async def alive_check(self, timeout: float = 5.0) -> Any:
        """Ask the latest connection whether the tester is alive; return its answer."""
        peer = self.peer
        seen = len(peer.received)
        peer.transport.write(self._alive_check_request())
        reply = self._alive_reply

        def answered() -> bool:
            return any(isinstance(m, reply) for m in peer.received[seen:])

        await self.wait_until(answered, timeout)
        return next(m for m in peer.received[seen:] if isinstance(m, reply))

    # -- for subclasses ----------------------------------------------------------------------

    def _protocol(self) -> asyncio.Protocol:
        """A protocol instance for a new tester connection."""
        raise NotImplementedError

    def _tls(self) -> SSLContext | None:
        """The TLS context to serve with; plain TCP by default."""
        return None

    def _alive_check_request(self) -> bytes:
        raise NotImplementedError

    def _frame_answer(self, target: int, tester: int, response: bytes) -> bytes:
        raise NotImplementedError

    def _changed(self) -> None:
        # Protocol callbacks are synchronous: resolve the waiters whose condition now holds.
        for condition, future in self._waiters:
            if not future.done() and condition():
                future.set_result(None)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, peer: P, target: int, tester: int, request: bytes) -> None:
        produced = self.handler(target, request)
        if isinstance(produced, AsyncIterator):
            async for response in produced:
                self._respond(peer, target, tester, response)
        else:
            for response in await produced:
                self._respond(peer, target, tester, response)

    def _respond(self, peer: P, target: int, tester: int, response: bytes) -> None:
        if peer.transport.is_closing():
            return
        peer.transport.write(self._frame_answer(target, tester, response))
        self.log.append(LogEntry("response", target, response))
        self._changed()
