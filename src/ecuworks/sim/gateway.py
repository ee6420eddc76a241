"""The central gateway: routes each request to its ECU over the bus model (a Router).

A request from the tester reaches the gateway over Ethernet; the gateway forwards it on the
ECU's bus, the ECU works on it (:class:`~ecuworks.sim.ecu.EcuServer`, sans-I/O), and every
answer travels back over the same bus. Transfers are booked on the bus's
:class:`~ecuworks.sim.timing.BusScheduler`, so ECUs on one bus share it, and every wait
runs on the :class:`~ecuworks.sim.timing.Clock`, so ``--time-scale`` shortens all of it.

The gateway also owns what acts on every ECU at once: the battery's terminal voltage under
load (charger, programming ECUs, scripted sags; below
:data:`~ecuworks.sim.battery.BROWNOUT_VOLTS` every ECU resets), the faults that silence an
ECU or replace an answer with an NRC, and the timer loop that lets ECUs time out (S3,
boot, security delay) when nobody talks to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Final

from ecuworks.profiles.model import BusProfile, EcuProfile
from ecuworks.sim.battery import BROWNOUT_VOLTS, load_amps, terminal_volts
from ecuworks.sim.ecu import EcuServer
from ecuworks.sim.faults import Faults
from ecuworks.sim.state import EcuState, VehicleState
from ecuworks.sim.timing import BusScheduler, Clock, transfer_seconds
from ecuworks.wire.doip import PowerMode
from ecuworks.wire.uds import NEGATIVE_RESPONSE_SID, Session

__all__ = ["Gateway"]

# Power mode "ready" needs the voltage ECUs accept flash work at (ecu_base's window).
_READY_VOLTS: Final = 10.5
# The timer loop looks at least this often (real seconds) even when nothing is due: a
# safety net only, as fault and battery changes wake it (at time scale 100, one simulated
# second as the period woke it a hundred times a second for nothing).
_IDLE_POLL_REAL_S: Final = 1.0
# Positive answers that confirm what an ECU keeps through a power loss: a reset (0x11),
# faults cleared (0x14), coding written (0x2E), flash erased or checked (0x31), a transfer
# ended (0x37). A real ECU's flash holds what it acknowledged, so the simulator writes its
# state file before such an answer leaves (``on_durable``), not up to a moment later.
_DURABLE_SERVICES: Final = frozenset({0x11, 0x14, 0x2E, 0x31, 0x37})


class Gateway:
    """Every ECU of one vehicle behind one gateway, as a :class:`~ecuworks.sim.router.Router`.

    Args:
        vehicle: the vehicle's mutable state (shared with the control API).
        buses: the vehicle's buses by name.
        clock: simulated time.
        faults: the faults in force.
        bus_timing: model bus transfer times; off where frames already paid for the bus
            on their own (the D-CAN bridge books every frame itself).
        seed: makes the ECUs' security seeds reproducible.
    """

    def __init__(
        self,
        vehicle: VehicleState,
        buses: dict[str, BusProfile],
        *,
        clock: Clock,
        faults: Faults,
        bus_timing: bool = True,
        seed: int = 0,
    ) -> None:
        self.vehicle = vehicle
        self.clock = clock
        self.faults = faults
        self.bus_timing = bus_timing
        self._buses = buses
        self._schedulers = {name: BusScheduler() for name in buses}
        self._seed = seed
        self.ecus: dict[int, EcuServer] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        for address, ecu in vehicle.ecus.items():
            self._attach(address, ecu)
        digest = hashlib.sha256(vehicle.vin.encode()).digest()
        # A locally administered unicast MAC, stable per VIN.
        self._eid = bytes([(digest[0] & 0xFC) | 0x02]) + digest[1:6]
        self._browned_out = False
        self._wake = asyncio.Event()
        self._timer_at = 0.0  # when the timer loop plans to look again (simulated)
        self._timer: asyncio.Task[None] | None = None
        self.on_change: Callable[[], None] = lambda: None  # the simulator saves state then
        self.on_durable: Callable[[], None] = lambda: None  # ... and now, before the answer

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Run the timer loop (S3, boot, battery) in the background."""
        self._timer = asyncio.get_running_loop().create_task(self._run_timers())

    async def close(self) -> None:
        """Stop the timer loop."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None

    # -- Router ------------------------------------------------------------------------

    @property
    def vin(self) -> str:
        """The VIN the gateway reports."""
        return self.vehicle.vin

    @property
    def eid(self) -> bytes:
        """The gateway's MAC address (DoIP EID)."""
        return self._eid

    @property
    def gid(self) -> bytes:
        """DoIP group id: one entity, so its own EID."""
        return self._eid

    @property
    def logical_address(self) -> int:
        """The gateway's diagnostic address."""
        return self.vehicle.gateway_address

    def knows(self, target: int) -> bool:
        """Whether an ECU sits at ``target``."""
        return target in self.ecus

    def power_mode(self) -> int:
        """DoIP diagnostic power mode: ready while the battery can carry diagnostics."""
        return PowerMode.READY if self.volts() >= _READY_VOLTS else PowerMode.NOT_READY

    async def request(self, target: int, payload: bytes) -> AsyncIterator[bytes]:
        """Route one physical request; yields the ECU's answers as they arrive."""
        async for answer in self.exchange(target, payload, functional=False):
            yield answer

    async def functional(self, payload: bytes) -> AsyncIterator[tuple[int, bytes]]:
        """Send one request to every ECU at once; yields ``(ecu, answer)`` as they arrive."""
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

        async def one(address: int) -> None:
            try:
                async for answer in self.exchange(address, payload, functional=True):
                    queue.put_nowait((address, answer))
            finally:
                queue.put_nowait(None)

        tasks = [asyncio.create_task(one(address)) for address in list(self.ecus)]
        try:
            remaining = len(tasks)
            while remaining:
                item = await queue.get()
                if item is None:
                    remaining -= 1
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- the vehicle's electrics -------------------------------------------------------

    def volts(self) -> float:
        """The battery's terminal voltage now: set voltage, charger, load and sags."""
        now = self.clock.now()
        sag = self.faults.sag_volts(now)
        if sag is not None:
            return sag
        battery = self.vehicle.battery
        programming = sum(
            1 for ecu in self.vehicle.ecus.values() if ecu.session == Session.PROGRAMMING
        )
        return terminal_volts(battery.volts, charger=battery.charger, load=load_amps(programming))

    def _check_power(self, now: float) -> bool:
        """Reset every ECU when the voltage falls under the brownout level; True if powered."""
        volts = self.volts()
        self.vehicle.battery.terminal_volts = volts
        if volts < BROWNOUT_VOLTS:
            if not self._browned_out:
                self._browned_out = True
                for ecu in self.ecus.values():
                    ecu.power_loss(now)
                self.on_change()
            return False
        self._browned_out = False
        return True

    # -- ECUs come and go (retrofit, replacement) ---------------------------------------

    def _attach(self, address: int, state: EcuState) -> None:
        self.ecus[address] = EcuServer(
            state, self.vehicle, seed=self._seed + address, protocol_scale=self.clock.time_scale
        )
        self._locks.setdefault(address, asyncio.Lock())

    def replace(self, address: int) -> EcuState:
        """Swap the ECU at ``address`` for a blank one (bootloader only)."""
        state = self.vehicle.replace_with_blank(address)
        self._attach(address, state)
        self._wake.set()
        return state

    def install(self, profile: EcuProfile) -> EcuState:
        """Add a new ECU to the vehicle (a retrofit), as delivered: programmed and coded."""
        if profile.bus not in self._buses:
            known = ", ".join(sorted(self._buses))
            raise KeyError(f"bus {profile.bus!r} is not in this vehicle (it has {known})")
        state = self.vehicle.install(profile)
        self._attach(profile.address, state)
        self._wake.set()
        return state

    # -- one exchange ------------------------------------------------------------------

    def _book(self, ecu: EcuState, size: int, *, to_ecu: bool, start: float) -> float:
        """Book ``size`` bytes between gateway and ECU on its bus; when they have arrived.

        Times are logical (simulated seconds): a wait that overshot does not delay what is
        booked after it, so the bus keeps its modelled rate.
        """
        if not self.bus_timing:
            return start
        bus = self._buses[ecu.bus]
        if bus.kind in ("can", "canfd"):
            # The receiver's flow control paces ISO-TP: the ECU's own STmin and block size
            # for requests, none for answers (the gateway reads as fast as the bus goes).
            seconds = transfer_seconds(
                bus,
                size,
                stmin_s=ecu.isotp_stmin_ms / 1000 if to_ecu else 0.0,
                block_size=ecu.isotp_block_size if to_ecu else 0,
                addressing="extended",
            )
        else:
            seconds = transfer_seconds(bus, size)
        return self._schedulers[ecu.bus].reserve(start, seconds)

    async def exchange(
        self, target: int, payload: bytes, *, functional: bool
    ) -> AsyncIterator[bytes]:
        """One request to one ECU (``functional``: it came to every ECU); yields answers."""
        server = self.ecus.get(target)
        if server is None or not payload:
            return
        state = server.state
        # A UDS server works on one request at a time.
        async with self._locks[target]:
            now = self._book(state, len(payload), to_ecu=True, start=self.clock.now())
            await self.clock.sleep_until(now)
            if not self._check_power(now) or self.faults.silenced(target):
                return
            nrc = self.faults.take_nrc(target, payload[0])
            if nrc is not None:
                answers = [(0.0, bytes((NEGATIVE_RESPONSE_SID, payload[0], nrc)))]
            else:
                answers = [
                    (reply.delay, reply.data)
                    for reply in server.handle(payload, now, functional=functional)
                ]
            self._deadline_moved(server)
            self.on_change()
            for delay, data in answers:
                ready = now + delay
                if delay > 0:
                    await self.clock.sleep_until(ready)  # the ECU works (erase, write)
                done = self._book(state, len(data), to_ecu=False, start=ready)
                await self.clock.sleep_until(done)
                if server is not self.ecus.get(target) or self._browned_out:
                    return  # replaced or browned out meanwhile: that answer never comes
                if payload[0] in _DURABLE_SERVICES and data[:1] == bytes((payload[0] + 0x40,)):
                    self.on_durable()
                yield data
            self.on_change()

    # -- timers ------------------------------------------------------------------------

    def wake(self) -> None:
        """Have the timer loop look again now (a fault or the battery changed)."""
        self._wake.set()

    def _deadline_moved(self, server: EcuServer) -> None:
        # Waking the loop on every request cost a quarter of the simulator's CPU: only an
        # earlier deadline than the one it sleeps towards needs it.
        deadline = server.next_deadline()
        if deadline is not None and deadline < self._timer_at:
            self._wake.set()

    async def _run_timers(self) -> None:
        """Poll each ECU at its next deadline and watch the battery, until cancelled."""
        clock = self.clock
        while True:
            now = clock.now()
            self._check_power(now)
            deadlines = [now + clock.to_sim(_IDLE_POLL_REAL_S)]
            for server in self.ecus.values():
                deadline = server.next_deadline()
                if deadline is not None and deadline <= now:
                    server.poll(now)
                    self.on_change()
                    deadline = server.next_deadline()
                if deadline is not None:
                    deadlines.append(deadline)
            for start, end, _ in self.faults.sags():
                deadlines.extend(t for t in (start, end) if t > now)
            self._wake.clear()
            self._timer_at = min(deadlines)
            wait = max(0.0, self._timer_at - clock.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), clock.to_real(wait))
