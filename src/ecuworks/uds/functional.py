"""Vehicle-wide (functional) UDS requests: tester present, DTC setting, communication control.

These go to every ECU at once through the link's functional address; around programming the
trade's tool silences the vehicle with them (DOMAIN.md, "UDS in a programming session").
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self

from ecuworks.errors import ConfigError, LinkError, NegativeResponse
from ecuworks.transport.base import Link
from ecuworks.wire.uds import (
    NEGATIVE_RESPONSE_SID,
    POSITIVE_RESPONSE_OFFSET,
    is_response_pending,
    nrc_name,
)

__all__ = [
    "TESTER_PRESENT_SUPPRESSED",
    "TesterPresent",
    "disable_communication_all",
    "disable_dtc_setting_all",
    "enable_communication_all",
    "enable_dtc_setting_all",
    "functional_request",
]

_log = logging.getLogger(__name__)

TESTER_PRESENT_SUPPRESSED = b"\x3e\x80"


class TesterPresent:
    """Keeps non-default sessions open: functional ``3E 80`` every ``interval`` seconds.

    Use as ``async with TesterPresent(link): ...``. When the link fails, sending stops
    quietly and the error is kept in :attr:`error` for the caller to look at.

    Args:
        link: the link to the vehicle.
        interval: seconds between two tester present messages (ISO 14229-2 S3server is
            5 s; the trade sends every 1-2 s).
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, link: Link, interval: float = 1.5) -> None:
        if interval <= 0:
            raise ConfigError(f"tester present interval must be positive, got {interval}")
        self.link = link
        self.interval = interval
        self.sent = 0
        self.error: LinkError | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether messages are still being sent."""
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> Self:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() does not raise the task's CancelledError, but does raise our own.
            await asyncio.wait([task])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            try:
                await self.link.send_functional(TESTER_PRESENT_SUPPRESSED)
            except LinkError as exc:
                _log.warning("tester present stopped: %s", exc)
                self.error = exc
                return
            self.sent += 1
            # Keep the rhythm, but after a stall send the next one interval from now.
            due = max(due + self.interval, loop.time())
            await asyncio.sleep(due - loop.time())


async def functional_request(
    link: Link,
    payload: bytes,
    *,
    timeout: float,
    expected: int | None = None,
) -> dict[int, bytes | NegativeResponse]:
    """Send a functional request and map each ECU to its final answer.

    "Response pending" answers are skipped, and so are answers to other services.

    Args:
        link: the link to the vehicle.
        payload: the request.
        timeout: seconds to collect answers.
        expected: stop early once this many ECUs have given their final answer
            ("response pending" does not count).

    Returns:
        ``{ecu address: positive response or the NegativeResponse it answered}``.
    """
    if not payload:
        raise ConfigError("a UDS request needs at least a service id")
    sid = payload[0]
    positive = sid + POSITIVE_RESPONSE_OFFSET
    answers: dict[int, bytes | NegativeResponse] = {}
    collected = await link.request_functional(payload, timeout, expected=expected, final=_is_final)
    for source, response in collected:
        if response and response[0] == positive:
            answers[source] = response
        elif (
            len(response) >= 3
            and response[0] == NEGATIVE_RESPONSE_SID
            and response[1] == sid
            and not is_response_pending(response)
        ):
            answers[source] = NegativeResponse(
                sid, response[2], nrc_name(response[2]), target=source
            )
    return answers


def _is_final(response: bytes) -> bool:
    return not is_response_pending(response)


async def disable_dtc_setting_all(link: Link) -> None:
    """Functional ``85 82``: every ECU stops storing DTCs (ISO 14229-1 ControlDTCSetting)."""
    await link.send_functional(b"\x85\x82")


async def enable_dtc_setting_all(link: Link) -> None:
    """Functional ``85 81``: every ECU stores DTCs again."""
    await link.send_functional(b"\x85\x81")


async def disable_communication_all(link: Link, communication_type: int = 0x01) -> None:
    """Functional ``28 81 <type>``: enableRxAndDisableTx on every ECU (ISO 14229-1, 10.5).

    ECUs stop sending normal communication messages (type 0x01) and keep receiving, so
    their bus stays quiet for programming while diagnostics still reach them.
    """
    await link.send_functional(bytes((0x28, 0x81, communication_type)))


async def enable_communication_all(link: Link, communication_type: int = 0x01) -> None:
    """Functional ``28 80 <type>``: enableRxAndTx on every ECU again."""
    await link.send_functional(bytes((0x28, 0x80, communication_type)))
