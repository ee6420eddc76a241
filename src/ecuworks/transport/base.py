"""The one link interface every transport implements, and the response routing they share.

A :class:`Link` is one path to the ECUs of a vehicle: a DoIP or HSFZ connection to the
gateway, or a CAN bus behind a VCI. It carries UDS PDUs to and from ECUs named by their
address and knows nothing of UDS itself: response-pending (NRC 0x78) is the UDS layer's
business, which is why :meth:`Link.receive` is separate from :meth:`Link.send`.

Responses are matched to requests by the address of the ECU that sent them. One exchange
per ECU runs at a time (:meth:`Link.lock`); exchanges with different ECUs run concurrently
over the same connection.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from ecuworks.errors import LinkClosed, LinkError, LinkTimeout

__all__ = ["Link", "LinkEvent", "LinkEventKind"]

# Responses nobody waits for (late answers after a timeout, unsolicited frames) are kept
# up to this many per ECU; the next request to that ECU discards them anyway.
_MAX_UNCLAIMED = 32


class LinkEventKind(enum.StrEnum):
    """What happened on a link."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    ALIVE_CHECK = "alive_check"  # the vehicle asked whether the tester is still there


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkEvent:
    """A change of a link's state, for listeners such as a progress display."""

    kind: LinkEventKind
    detail: str = ""


class _Inbox:
    """Responses from one ECU and the one task waiting for them."""

    __slots__ = ("error", "responses", "waiter")

    def __init__(self) -> None:
        self.responses: collections.deque[bytes] = collections.deque(maxlen=_MAX_UNCLAIMED)
        self.waiter: asyncio.Future[bytes] | None = None
        self.error: LinkError | None = None


def _expire(future: asyncio.Future[bytes], target: int, timeout: float) -> None:
    if not future.done():
        future.set_exception(LinkTimeout(f"no answer from ECU 0x{target:02X} within {timeout:g} s"))


class Link(abc.ABC):
    """An async path to the ECUs of one vehicle.

    Subclasses implement :meth:`open`, :meth:`close`, :meth:`_transmit` and
    :meth:`_transmit_functional`, and feed what arrives into :meth:`_deliver`,
    :meth:`_fail` and :meth:`_fail_all`.

    Args:
        tester_address: this tester's address on the transport.
        functional_address: the address that reaches every ECU at once.
    """

    def __init__(self, *, tester_address: int, functional_address: int) -> None:
        self.tester_address = tester_address
        self.functional_address = functional_address
        self._inboxes: dict[int, _Inbox] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._listeners: list[Callable[[LinkEvent], None]] = []
        self._collector: list[tuple[int, bytes]] | None = None
        self._collected: asyncio.Event | None = None
        self._expected: int | None = None
        self._final: Callable[[bytes], bool] | None = None
        self._finished: set[int] = set()
        self._down: LinkError | None = LinkClosed("the link is not open yet")

    # -- lifecycle ---------------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and activate routing where the transport needs it.

        Raises:
            LinkError: the vehicle or interface cannot be reached or refused the tester.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect; waiting requests fail with :class:`LinkClosed`. Idempotent."""

    @property
    def is_open(self) -> bool:
        """Whether requests can be sent now."""
        return self._down is None

    async def reconnect(self) -> None:
        """Close if needed and open again, e.g. after the link dropped."""
        await self.close()
        await self.open()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- events ------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[LinkEvent], None]) -> Callable[[], None]:
        """Call ``listener`` for every :class:`LinkEvent`; returns the unsubscribe call."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, kind: LinkEventKind, detail: str = "") -> None:
        event = LinkEvent(kind=kind, detail=detail)
        for listener in list(self._listeners):
            listener(event)

    # -- physical requests -------------------------------------------------------------

    def lock(self, target: int) -> asyncio.Lock:
        """The lock that serialises exchanges with one ECU (hold it for send + receive)."""
        lock = self._locks.get(target)
        if lock is None:
            lock = self._locks[target] = asyncio.Lock()
        return lock

    async def send(self, target: int, payload: bytes) -> None:
        """Send one UDS request to one ECU, discarding its unclaimed earlier responses.

        Raises:
            LinkClosed: the link is not open.
        """
        if self._down is not None:
            raise self._down
        inbox = self._inboxes.get(target)
        if inbox is None:
            inbox = self._inboxes[target] = _Inbox()
        else:
            inbox.responses.clear()
            inbox.error = None
        await self._transmit(target, payload)

    async def receive(self, target: int, timeout: float) -> bytes:
        """Wait for the next response from one ECU.

        Raises:
            LinkTimeout: nothing arrived within ``timeout`` seconds.
            TransportNack: the gateway refused the request.
            LinkClosed: the link dropped while waiting.
        """
        inbox = self._inboxes.get(target)
        if inbox is None:
            inbox = self._inboxes[target] = _Inbox()
        if inbox.responses:
            return inbox.responses.popleft()
        if inbox.error is not None:
            error, inbox.error = inbox.error, None
            raise error
        if self._down is not None:
            raise self._down
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        inbox.waiter = future
        timer = loop.call_later(timeout, _expire, future, target, timeout)
        try:
            return await future
        finally:
            timer.cancel()
            inbox.waiter = None

    async def request(self, target: int, payload: bytes, timeout: float) -> bytes:
        """Send a request and return the first response (NRC 0x78 is the caller's)."""
        async with self.lock(target):
            await self.send(target, payload)
            return await self.receive(target, timeout)

    # -- functional requests -----------------------------------------------------------

    async def send_functional(self, payload: bytes) -> None:
        """Send one request to every ECU at once, expecting no answer (e.g. ``3E 80``)."""
        if self._down is not None:
            raise self._down
        await self._transmit_functional(payload)

    async def request_functional(
        self,
        payload: bytes,
        timeout: float,
        *,
        expected: int | None = None,
        final: Callable[[bytes], bool] | None = None,
    ) -> list[tuple[int, bytes]]:
        """Send a functional request and collect answers for ``timeout`` seconds.

        Answers from ECUs in the middle of a physical exchange stay with that exchange.
        Only one functional request runs at a time.

        Args:
            payload: the UDS request.
            timeout: how long to collect.
            expected: stop early once this many different ECUs have answered.
            final: which answers count toward ``expected`` (the UDS layer passes "not
                response pending"); by default every answer counts.

        Returns:
            ``(ecu address, response)`` pairs in arrival order.
        """
        if self._collector is not None:
            raise LinkError("a functional request is already collecting answers")
        collected: list[tuple[int, bytes]] = []
        self._collector = collected
        self._collected = done = asyncio.Event()
        self._expected = expected
        self._final = final
        self._finished = set()
        try:
            await self.send_functional(payload)
            # collecting until the deadline is the normal end
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
        finally:
            self._collector = self._collected = self._expected = self._final = None
        if self._down is not None and not collected:
            raise self._down
        return collected

    # -- for transports ----------------------------------------------------------------

    @abc.abstractmethod
    async def _transmit(self, target: int, payload: bytes) -> None:
        """Put one physically addressed request on the wire."""

    @abc.abstractmethod
    async def _transmit_functional(self, payload: bytes) -> None:
        """Put one functionally addressed request on the wire."""

    def _mark_up(self) -> None:
        """Called by a transport once its connection is usable."""
        self._down = None
        self._emit(LinkEventKind.CONNECTED)

    def _deliver(self, source: int, payload: bytes) -> None:
        """Hand a response from ECU ``source`` to whoever waits for it."""
        inbox = self._inboxes.get(source)
        collector = self._collector
        if collector is not None and (
            inbox is None or (inbox.waiter is None and not self.lock(source).locked())
        ):
            collector.append((source, payload))
            if self._final is None or self._final(payload):
                self._finished.add(source)
            expected = self._expected
            if expected is not None and len(self._finished) >= expected and self._collected:
                self._collected.set()
            return
        if inbox is None:
            inbox = self._inboxes[source] = _Inbox()
        waiter = inbox.waiter
        if waiter is not None and not waiter.done():
            inbox.waiter = None
            waiter.set_result(payload)
        else:
            inbox.responses.append(payload)

    def _fail(self, target: int, error: LinkError) -> None:
        """Fail the exchange with one ECU, now or at its next :meth:`receive`."""
        inbox = self._inboxes.get(target)
        if inbox is None:
            inbox = self._inboxes[target] = _Inbox()
        waiter = inbox.waiter
        if waiter is not None and not waiter.done():
            inbox.waiter = None
            waiter.set_exception(error)
        else:
            inbox.error = error

    def _fail_all(self, error: LinkError) -> None:
        """The connection is gone: fail every waiting exchange and refuse new ones."""
        first = self._down is None
        self._down = error
        for inbox in self._inboxes.values():
            inbox.responses.clear()
            inbox.error = None
            waiter = inbox.waiter
            if waiter is not None and not waiter.done():
                inbox.waiter = None
                waiter.set_exception(error)
        if self._collected is not None:
            self._collected.set()
        if first:
            self._emit(LinkEventKind.DISCONNECTED, str(error))
