"""The whole simulated vehicle, assembled: ``ecuworks sim`` and the tests' fixture run this.

:class:`Simulator` loads a vehicle profile (or the saved state of a vehicle that ran before),
builds the gateway and its ECUs, and serves what the vehicle's generation offers: DoIP
and/or HSFZ for F- and G-series cars, D-CAN through the VCI's socketcand bridge for the
E-series; plus the HTTP control API. It implements the control API's
:class:`~ecuworks.sim.control.ControlTarget`.

The state is saved to ``state_file`` (atomically) shortly after every change, whenever
``/state`` is read (what a client saw is on disk), and on stop: a simulator killed and
restarted with the same file serves the same vehicle, as a car keeps its ECUs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ecuworks.errors import ConfigError
from ecuworks.profiles import VehicleProfile, load_profile, parse_ecu
from ecuworks.sim.control import ControlServer, create_app, serve_control
from ecuworks.sim.dcan import DcanBus
from ecuworks.sim.doip_server import DoipServer
from ecuworks.sim.faults import DropFault, Fault, Faults
from ecuworks.sim.gateway import Gateway
from ecuworks.sim.hsfz_server import HsfzServer
from ecuworks.sim.server_base import DropBudget
from ecuworks.sim.state import VehicleState
from ecuworks.sim.timing import Clock
from ecuworks.sim.vci import Vci

__all__ = ["Simulator"]

_log = logging.getLogger(__name__)

# How soon after a change the state reaches the disk (real seconds).
_SAVE_DELAY_S: Final = 0.2


class _Faults(Faults):
    """Faults whose connection drops reach the protocol servers at once."""

    def __init__(self, simulator: Simulator) -> None:
        super().__init__()
        self._simulator = simulator

    def add(self, fault: Fault, now: float) -> dict[str, Any]:
        stored = super().add(fault, now)
        self._simulator.gateway.wake()  # a sag may start before the timer loop looks again
        if isinstance(fault, DropFault):
            # One budget for the vehicle: the fault cuts one connection, any protocol.
            self._simulator.drops.arm(self.take_drop())
        return stored


class Simulator:
    """A simulated vehicle on loopback sockets.

    Args:
        vehicle: a profile name (``f-series``), a TOML path, or a loaded profile.
        host: the loopback address every socket binds to.
        doip_port: DoIP TCP and UDP port (0: any free one).
        hsfz_port: HSFZ TCP port.
        hsfz_udp_port: HSFZ identification UDP port.
        control_port: HTTP control API port.
        vci_port: the VCI's D-CAN bridge (socketcand) port, for E-series cars.
        time_scale: every simulated duration is divided by this.
        state_file: where the vehicle's state lives between runs; loaded when it exists.
        size_scale: overrides the profile's image size scale.
        seed: makes security seeds reproducible.
    """

    def __init__(
        self,
        vehicle: str | Path | VehicleProfile = "f-series",
        *,
        host: str = "127.0.0.1",
        doip_port: int = 13400,
        hsfz_port: int = 6801,
        hsfz_udp_port: int = 6811,
        control_port: int = 8765,
        vci_port: int = 29536,
        time_scale: float = 1.0,
        state_file: str | Path | None = None,
        size_scale: float | None = None,
        seed: int = 0,
    ) -> None:
        self.profile = (
            vehicle
            if isinstance(vehicle, VehicleProfile)
            else load_profile(vehicle, size_scale=size_scale)
        )
        self.host = host
        self._ports = {
            "doip": doip_port,
            "hsfz": hsfz_port,
            "hsfz-udp": hsfz_udp_port,
            "control": control_port,
            "vci": vci_port,
        }
        self.clock = Clock(time_scale)
        self.state_file = Path(state_file) if state_file is not None else None
        if self.state_file is not None and self.state_file.exists():
            self.state = VehicleState.load(self.state_file)
            if self.state.name != self.profile.name:
                raise ConfigError(
                    f"{self.state_file} holds the state of a {self.state.name} vehicle, not "
                    f"{self.profile.name}; use another --state file or delete this one"
                )
        else:
            self.state = VehicleState.from_profile(self.profile)
        self._faults = _Faults(self)
        self.gateway = Gateway(
            self.state,
            {bus.name: bus for bus in self.profile.buses},
            clock=self.clock,
            faults=self._faults,
            bus_timing="dcan" not in self.profile.transports,
            seed=seed,
        )
        self._vci = Vci(
            self.profile.vci_firmware,
            vin_provider=lambda: self.state.vin,
            battery_provider=self.gateway.volts,
        )
        self.drops = DropBudget()
        self.servers: list[DoipServer | HsfzServer] = []
        self.dcan: DcanBus | None = None
        self._control: ControlServer | None = None
        self._saved: str | None = None
        self._save_task: asyncio.Task[None] | None = None

    @classmethod
    def on_free_ports(
        cls, vehicle: str | Path | VehicleProfile = "f-series", **options: Any
    ) -> Simulator:
        """A simulator whose every socket takes a free loopback port, so that several run
        side by side (tests, demos, benchmarks); :attr:`ports` names them once started.
        ``options`` are the constructor's others (``time_scale``, ``state_file``, ...)."""
        return cls(
            vehicle,
            doip_port=0,
            hsfz_port=0,
            hsfz_udp_port=0,
            control_port=0,
            vci_port=0,
            **options,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open every socket of the vehicle and start its clocks.

        Raises:
            ConfigError: a port is taken or the host is not loopback.
        """
        transports = self.profile.transports
        try:
            if "doip" in transports:
                doip = DoipServer(
                    self.gateway, host=self.host, port=self._ports["doip"], drops=self.drops
                )
                await doip.start()
                self.servers.append(doip)
                self._ports["doip"] = doip.port
            if "hsfz" in transports:
                hsfz = HsfzServer(
                    self.gateway,
                    host=self.host,
                    port=self._ports["hsfz"],
                    udp_port=self._ports["hsfz-udp"],
                    drops=self.drops,
                )
                await hsfz.start()
                self.servers.append(hsfz)
                self._ports["hsfz"], self._ports["hsfz-udp"] = hsfz.port, hsfz.udp_port
            if "dcan" in transports:
                bus = next(b for b in self.profile.buses if b.kind == "can")
                self.dcan = DcanBus(
                    self.gateway, bus, clock=self.clock, host=self.host, port=self._ports["vci"]
                )
                await self.dcan.start()
                self._ports["vci"] = self.dcan.port
            self._control = await serve_control(create_app(self), self.host, self._ports["control"])
            self._ports["control"] = self._control.port
        except OSError as exc:
            await self.stop()
            raise ConfigError(
                f"cannot open the simulator's sockets on {self.host}: {exc.strerror or exc}; "
                "is another simulator running? Choose other ports (0 picks free ones)"
            ) from exc
        self.gateway.on_change = self._changed
        self.gateway.on_durable = self._save_now
        self.gateway.start()
        self._save_now()

    async def stop(self) -> None:
        """Close every socket and save the state."""
        await self.gateway.close()
        if self._save_task is not None:
            self._save_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._save_task
            self._save_task = None
        if self._control is not None:
            await self._control.close()
            self._control = None
        if self.dcan is not None:
            await self.dcan.close()
            self.dcan = None
        for server in self.servers:
            await server.close()
        self.servers.clear()
        self._save_now()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def ports(self) -> dict[str, int]:
        """The ports in use, by name, for what this vehicle serves."""
        wanted = {"control"}
        if "doip" in self.profile.transports:
            wanted.add("doip")
        if "hsfz" in self.profile.transports:
            wanted |= {"hsfz", "hsfz-udp"}
        if "dcan" in self.profile.transports:
            wanted.add("vci")
        return {name: port for name, port in self._ports.items() if name in wanted}

    def ready_line(self) -> str:
        """The one line ``ecuworks sim`` prints once every socket is open."""
        ports = " ".join(f"{name}={port}" for name, port in self.ports.items())
        return f"ready vehicle={self.profile.name} vin={self.state.vin} {ports}"

    # -- persistence -------------------------------------------------------------------------

    def _changed(self) -> None:
        if self.state_file is None or self._save_task is not None:
            return
        self._save_task = asyncio.get_running_loop().create_task(self._save_soon())

    async def _save_soon(self) -> None:
        await asyncio.sleep(_SAVE_DELAY_S)  # a batch of changes, one write
        self._save_task = None
        self._save_now()

    def _save_now(self) -> None:
        if self.state_file is None:
            return
        text = json.dumps(self.state.to_json(), sort_keys=True)
        if text != self._saved:
            self.state.save(self.state_file)
            self._saved = text

    # -- ControlTarget -----------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self._faults

    @property
    def vci(self) -> Vci:
        """The vehicle interface and its reservation."""
        return self._vci

    def now(self) -> float:
        """Simulated seconds since start."""
        return self.clock.now()

    def state_json(self) -> dict[str, Any]:
        """The ``/state`` document; what it shows is saved before it is served."""
        self.state.battery.terminal_volts = self.gateway.volts()
        self._save_now()
        return self.state.to_json()

    def set_battery(self, volts: float | None, charger: bool | None) -> dict[str, Any]:
        """Set the battery's voltage and/or the charger."""
        if volts is not None:
            self.state.battery.volts = volts
        if charger is not None:
            self.state.battery.charger = charger
        self.gateway.wake()  # below the brownout level every ECU resets at once
        self._save_now()
        return {"volts": self.state.battery.volts, "charger": self.state.battery.charger}

    def replace_ecu(self, address: int) -> dict[str, Any]:
        """Swap an ECU for a blank part (bootloader only)."""
        if address not in self.state.ecus:
            raise KeyError(f"no ECU at 0x{address:02X}")
        ecu = self.gateway.replace(address)
        # A new part comes with the bootloader it was built with. The blank copies the old
        # part's, which a bricked ECU (the usual reason for a swap) no longer has: then it
        # is the profile's.
        factory = next((e for e in self.profile.ecus if e.address == address), None)
        if factory is not None:
            units = {r.address: r.unit for r in factory.regions if r.process_class == "BTLD"}
            for region in ecu.regions:
                if region.address in units and region.unit is None:
                    region.unit, region.valid = units[region.address], True
        self._save_now()
        return ecu.to_json()

    def store_dtcs(self, address: int, codes: list[int], status: int) -> dict[str, Any]:
        """Store faults in an ECU's fault memory (the control API's DTC injection)."""
        ecu = self.state.ecus.get(address)
        if ecu is None:
            raise KeyError(f"no ECU at 0x{address:02X}")
        ecu.store_dtcs(codes, status)
        self._save_now()
        shown = ecu.to_json()
        return {
            "address": ecu.address,
            "name": ecu.name,
            "dtcs": shown["dtcs"],
            "dtc_status": shown["dtc_status"],
        }

    def install_ecu(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Install a new ECU (a retrofit) from a ``[[ecus]]``-shaped definition."""
        profile = parse_ecu(definition, size_scale=self.profile.size_scale, source="POST /ecus")
        try:
            ecu = self.gateway.install(profile)
        except KeyError as exc:
            raise ConfigError(f"POST /ecus: {exc.args[0]}") from exc
        self._save_now()
        return ecu.to_json()
