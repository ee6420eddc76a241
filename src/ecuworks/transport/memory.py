"""A link to ECUs that live in the same process, for tests of the layers above transport.

The ECUs are one async callable: given the target address and a request it yields zero or
more responses, which the link delivers as a real transport would. No sockets, no threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from ecuworks.errors import LinkClosed
from ecuworks.transport.base import Link

__all__ = ["MemoryLink", "Responder"]

Responder = Callable[[int, bytes], AsyncIterator[bytes]]
"""``responder(target, request)`` yields the ECU's responses, e.g. ``7F 31 78`` then the answer."""


class MemoryLink(Link):
    """A :class:`Link` whose ECUs are an in-process async generator function.

    Args:
        responder: answers each request; see :data:`Responder`.
        functional_targets: the ECUs a functional request reaches.
        tester_address: reported tester address.
        functional_address: reported functional address.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        functional_targets: Iterable[int] = (),
        tester_address: int = 0x0EF3,
        functional_address: int = 0xE400,
    ) -> None:
        super().__init__(tester_address=tester_address, functional_address=functional_address)
        self._responder = responder
        self.functional_targets = tuple(functional_targets)
        self.sent: list[tuple[int, bytes]] = []  # every request, for assertions
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Mark the link usable."""
        self._mark_up()

    async def close(self) -> None:
        """Stop answering; waiting requests fail with :class:`LinkClosed`."""
        for task in list(self._tasks):
            task.cancel()
        self._fail_all(LinkClosed("the in-memory link was closed"))

    def drop(self) -> None:
        """Simulate the connection dropping mid-exchange."""
        for task in list(self._tasks):
            task.cancel()
        self._fail_all(LinkClosed("the connection to the vehicle dropped"))

    async def _run(self, target: int, payload: bytes) -> None:
        async for response in self._responder(target, payload):
            self._deliver(target, response)

    def _spawn(self, target: int, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._run(target, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _transmit(self, target: int, payload: bytes) -> None:
        self.sent.append((target, payload))
        self._spawn(target, payload)

    async def _transmit_functional(self, payload: bytes) -> None:
        self.sent.append((self.functional_address, payload))
        for target in self.functional_targets:
            self._spawn(target, payload)
