"""The e-series D-CAN behind the VCI: CAN frames over socketcand, ISO-TP per ECU.

E-series cars are diagnosed on D-CAN (500 kbit/s, 11-bit identifiers, BMW's extended
addressing); the VCI bridges that bus to Ethernet. Here the bridge speaks socketcand
(:mod:`ecuworks.sim.socketcand`), each ECU reassembles requests and segments answers with
its own server-side ISO-TP endpoint (:mod:`ecuworks.sim.isotp`), and every frame, in
either direction, occupies the bus for its frame time on one
:class:`~ecuworks.sim.timing.BusScheduler` -- so the bus, not the host, sets the pace, as
ISO-TP's frame arithmetic says it should. The gateway behind it therefore runs without its
own bus timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable
from typing import Any, Final

from ecuworks.profiles.model import BusProfile
from ecuworks.sim.gateway import Gateway
from ecuworks.sim.isotp import Error, Frame, IsotpEndpoint, MessageReceived, SendFrames
from ecuworks.sim.socketcand import SocketcandServer
from ecuworks.sim.timing import BusScheduler, Clock, can_frame_seconds

__all__ = ["DcanBus"]

_log = logging.getLogger(__name__)

# Endpoint timers (N_Bs, N_Cr) are checked this often, in real seconds.
_POLL_REAL_S: Final = 0.05
# N_Bs and N_Cr, 1000 ms each (ISO 15765-2, table 16). The tester meets them in real time,
# so, like the ECUs' protocol timers, the time scale does not shorten them.
_N_TIMEOUT_S: Final = 1.0


class _Ecu:
    """One ECU's ISO-TP endpoint and the order its frames leave in."""

    def __init__(self, address: int, endpoint: IsotpEndpoint) -> None:
        self.address = address
        self.endpoint = endpoint
        self.sending = asyncio.Lock()  # frames of one ECU leave in the order released


class DcanBus:
    """D-CAN as the VCI bridges it: socketcand on ``host:port``, the ECUs behind it.

    Args:
        gateway: routes complete requests to the ECU models (created with
            ``bus_timing=False``: frames pay for the bus here).
        bus: the D-CAN bus profile (its bit rate times every frame).
        clock: simulated time.
        host: where the bridge listens (loopback).
        port: its TCP port (0 for any free one).
        channel: the CAN channel name socketcand clients open.
    """

    def __init__(
        self,
        gateway: Gateway,
        bus: BusProfile,
        *,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 29536,
        channel: str = "can0",
    ) -> None:
        self.gateway = gateway
        self.clock = clock
        self._frame_s = can_frame_seconds(8, bus.bitrate)  # D-CAN frames are padded to 8
        self._scheduler = BusScheduler()
        self._ecus: dict[int, _Ecu] = {}
        for address, state in gateway.vehicle.ecus.items():
            endpoint = IsotpEndpoint.bmw_dcan(
                address,
                stmin_s=state.isotp_stmin_ms / 1000,
                block_size=state.isotp_block_size,
                max_message=max(0xFFF, state.max_block_length),
                n_bs=_N_TIMEOUT_S * clock.time_scale,
                n_cr=_N_TIMEOUT_S * clock.time_scale,
                frame_s=self._frame_s,
            )
            self._ecus[address] = _Ecu(address, endpoint)
        self.server = SocketcandServer(self._on_frame, channel=channel, host=host, port=port)
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bridge's TCP port."""
        return self.server.port

    async def start(self) -> None:
        """Listen for testers."""
        await self.server.start()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def close(self) -> None:
        """Stop listening and drop what is in flight."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.close()

    # -- frames in -------------------------------------------------------------------------

    async def _on_frame(self, can_id: int, data: bytes, extended: bool) -> None:
        if extended:
            return  # D-CAN diagnostics use 11-bit identifiers only
        # The frame holds the bus for its frame time before any receiver has it.
        done = self._scheduler.reserve(self.clock.now(), self._frame_s)
        await self.clock.sleep_until(done)
        now = self.clock.now()
        for ecu in self._ecus.values():
            if ecu.address in self.gateway.ecus and ecu.endpoint.accepts(can_id, data):
                self._handle(ecu, ecu.endpoint.feed(data, now))

    def _handle(self, ecu: _Ecu, events: Iterable[object]) -> None:
        for event in events:
            if isinstance(event, MessageReceived):
                self._spawn(self._answer(ecu, event.payload, event.functional))
            elif isinstance(event, SendFrames):
                self._spawn(self._send(ecu, event.frames))
            elif isinstance(event, Error):
                _log.info("D-CAN ECU 0x%02X: %s %s", ecu.address, event.result, event.detail)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- frames out ------------------------------------------------------------------------

    async def _answer(self, ecu: _Ecu, payload: bytes, functional: bool) -> None:
        async for answer in self.gateway.exchange(ecu.address, payload, functional=functional):
            await self._send(ecu, ecu.endpoint.send(answer, self.clock.now()))

    async def _send(self, ecu: _Ecu, frames: Iterable[Frame]) -> None:
        async with ecu.sending:
            for frame in frames:
                await self.clock.sleep_until(frame.at)
                done = self._scheduler.reserve(self.clock.now(), self._frame_s)
                await self.clock.sleep_until(done)
                await self.server.send_frame(ecu.endpoint.tx_id, frame.data)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(_POLL_REAL_S)
            now = self.clock.now()
            for ecu in self._ecus.values():
                deadline = ecu.endpoint.next_deadline()
                if deadline is not None and deadline <= now:
                    self._handle(ecu, ecu.endpoint.poll(now))
