"""The control API over real loopback sockets: every route, its errors, and abuse."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError
from ecuworks.sim.control import (
    ControlServer,
    ControlTarget,
    create_app,
    parse_address,
    serve_control,
)
from ecuworks.sim.faults import Faults
from ecuworks.sim.vci import Vci

VIN = "WBA8E9G50GNU12345"
POST_ROUTES = ["/battery", "/faults", "/ecus", "/ecus/0x12/replace", "/vci/reservation"]


class FakeVehicle:
    """A ControlTarget backed by dicts: just enough vehicle for the API to steer."""

    def __init__(self) -> None:
        self.clock = 50.0
        self.faults = Faults()
        self.battery: dict[str, Any] = {"volts": 12.6, "charger": False}
        self.ecus: dict[int, dict[str, Any]] = {
            0x10: {"address": 0x10, "name": "ZGW", "mode": "application"},
            0x12: {"address": 0x12, "name": "DME", "mode": "application"},
        }
        self.vci = Vci("ICOM-NEXT 04.07.1", lambda: VIN, lambda: float(self.battery["volts"]))

    def now(self) -> float:
        return self.clock

    def state_json(self) -> dict[str, Any]:
        return {"vin": VIN, "battery": dict(self.battery), "ecus": list(self.ecus.values())}

    def set_battery(self, volts: float | None, charger: bool | None) -> dict[str, Any]:
        if volts is not None:
            self.battery["volts"] = volts
        if charger is not None:
            self.battery["charger"] = charger
        return dict(self.battery)

    def replace_ecu(self, address: int) -> dict[str, Any]:
        old = self.ecus[address]
        self.ecus[address] = {**old, "mode": "bootloader"}
        return self.ecus[address]

    def install_ecu(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        address, name = definition.get("address"), definition.get("name")
        if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 255:
            raise ConfigError("ecus: 'address' must be an integer 0-255")
        if not isinstance(name, str):
            raise ConfigError("ecus: 'name' must be a string")
        if address in self.ecus:
            raise ConfigError(f"ecus: address 0x{address:02X} is taken")
        self.ecus[address] = {"address": address, "name": name, "mode": "application"}
        return self.ecus[address]

    def store_dtcs(self, address: int, codes: list[int], status: int) -> dict[str, Any]:
        ecu = self.ecus[address]  # the route's own tests run on the real simulator
        ecu["dtcs"] = [f"{code:06X}" for code in codes]
        return ecu


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    vehicle: FakeVehicle
    clock: FakeClock
    client: httpx.AsyncClient
    port: int
    running: ControlServer


def test_the_fake_is_a_control_target() -> None:
    target: ControlTarget = FakeVehicle()  # mypy checks the protocol here
    assert target.now() == 50.0


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    vehicle, clock = FakeVehicle(), FakeClock()
    running = await serve_control(create_app(vehicle, vci_clock=clock), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{running.port}", trust_env=False, timeout=10
        ) as client:
            yield Api(vehicle, clock, client, running.port, running)
    finally:
        await running.close()


async def test_health_and_state(api: Api) -> None:
    assert (await api.client.get("/health")).json() == {"status": "ok"}
    state = (await api.client.get("/state")).json()
    assert state["vin"] == VIN
    assert [e["name"] for e in state["ecus"]] == ["ZGW", "DME"]


async def test_battery_sets_either_or_both(api: Api) -> None:
    r = await api.client.post("/battery", json={"volts": 13.8})
    assert (r.status_code, r.json()) == (200, {"volts": 13.8, "charger": False})
    r = await api.client.post("/battery", json={"charger": True})
    assert r.json() == {"volts": 13.8, "charger": True}
    r = await api.client.post("/battery", json={"volts": 12, "charger": False})
    assert r.json() == {"volts": 12.0, "charger": False}
    assert (await api.client.get("/state")).json()["battery"] == {"volts": 12.0, "charger": False}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"volts": 30.5}, "volts"),
        ({"volts": -1}, "volts"),
        ({"volts": "12"}, "volts"),
        ({"charger": "yes"}, "charger"),
        ({"volt": 12}, "volt"),
        ({}, "give"),
        ([12.1], "body"),
    ],
)
async def test_battery_rejects_bad_values_with_422(api: Api, body: Any, says: str) -> None:
    r = await api.client.post("/battery", json=body)
    assert r.status_code == 422
    assert says in r.json()["error"]
    assert api.vehicle.battery == {"volts": 12.6, "charger": False}


async def test_battery_rejects_nan_and_malformed_json(api: Api) -> None:
    headers = {"content-type": "application/json"}
    r = await api.client.post("/battery", content=b'{"volts": NaN}', headers=headers)
    assert r.status_code == 422
    r = await api.client.post("/battery", content=b'{"volts": 12', headers=headers)
    assert r.status_code == 422
    assert "not valid JSON" in r.json()["error"]


async def test_faults_add_list_remove_clear(api: Api) -> None:
    r = await api.client.post("/faults", json={"kind": "sag", "at": 2, "volts": 9, "duration": 1})
    assert r.status_code == 201
    assert r.json() == {
        "id": 1,
        "added_at": 50.0,
        "kind": "sag",
        "at": 2.0,
        "volts": 9.0,
        "duration": 1.0,
        "start": 52.0,
        "end": 53.0,
    }
    assert api.vehicle.faults.sags() == [(52.0, 53.0, 9.0)]
    r = await api.client.post(
        "/faults", json={"kind": "nrc", "ecu": "0x12", "service": 0x36, "nth": 2, "nrc": 0x72}
    )
    assert r.status_code == 201
    assert [f["kind"] for f in (await api.client.get("/faults")).json()["faults"]] == ["sag", "nrc"]
    assert (await api.client.delete("/faults/1")).json() == {"removed": 1}
    r = await api.client.delete("/faults/1")
    assert r.status_code == 404
    assert "GET /faults" in r.json()["error"]
    assert (await api.client.delete("/faults")).json() == {"cleared": 1}
    assert (await api.client.get("/faults")).json() == {"faults": []}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"kind": "flood"}, "use one of 'drop', 'silence', 'nrc', 'sag'"),
        ({"kind": "drop"}, "missing field 'after_bytes'"),
        ({"kind": "silence", "ecu": 300}, "'ecu' must be 0..255"),
        ([{"kind": "drop", "after_bytes": 1}], "body"),
    ],
)
async def test_faults_reject_bad_objects_with_422(api: Api, body: Any, says: str) -> None:
    r = await api.client.post("/faults", json=body)
    assert r.status_code == 422
    assert says in r.json()["error"]
    assert api.vehicle.faults.list() == []


@pytest.mark.parametrize("addr", ["18", "0x12", "0X12"])
async def test_replace_an_ecu_by_decimal_or_hex_address(api: Api, addr: str) -> None:
    r = await api.client.post(f"/ecus/{addr}/replace")
    assert (r.status_code, r.json()["name"], r.json()["mode"]) == (200, "DME", "bootloader")


async def test_replace_errors(api: Api) -> None:
    r = await api.client.post("/ecus/0x63/replace")
    assert r.status_code == 404
    assert "no ECU at 0x63" in r.json()["error"]
    for bad in ["DME", "0x100", "256", "-1", "0x"]:
        r = await api.client.post(f"/ecus/{bad}/replace")
        assert r.status_code == 422, bad
        assert "decimal (18) or hex (0x12)" in r.json()["error"]


async def test_install_an_ecu(api: Api) -> None:
    r = await api.client.post("/ecus", json={"address": 0x64, "name": "PDC"})
    assert (r.status_code, r.json()["name"]) == (201, "PDC")
    assert 0x64 in api.vehicle.ecus
    r = await api.client.post("/ecus", json={"address": 0x64, "name": "PDC"})
    assert (r.status_code, r.json()) == (422, {"error": "ecus: address 0x64 is taken"})
    r = await api.client.post("/ecus", json="PDC")
    assert r.status_code == 422


async def test_vci_reserve_renew_refuse_release(api: Api) -> None:
    r = await api.client.post("/vci/reservation", json={"owner": "ws-01", "lease_s": 30})
    assert (r.status_code, r.json()) == (
        200,
        {"owner": "ws-01", "lease_s": 30.0, "expires_in": 30.0},
    )
    api.clock.now += 10
    info = (await api.client.get("/vci")).json()
    assert info == {
        "firmware": "ICOM-NEXT 04.07.1",
        "vin": VIN,
        "battery_volts": 12.6,
        "owner": "ws-01",
        "lease_expires_in": 20.0,
    }
    r = await api.client.post("/vci/reservation", json={"owner": "ws-02", "lease_s": 30})
    assert r.status_code == 409
    assert (r.json()["owner"], r.json()["expires_in"]) == ("ws-01", 20.0)
    assert "reserved by 'ws-01'" in r.json()["error"]
    r = await api.client.request("DELETE", "/vci/reservation", json={"owner": "ws-02"})
    assert (r.status_code, r.json()["owner"]) == (409, "ws-01")
    r = await api.client.request("DELETE", "/vci/reservation", json={"owner": "ws-01"})
    assert (r.status_code, r.json()) == (200, {"released": True})
    r = await api.client.request("DELETE", "/vci/reservation", json={"owner": "ws-01"})
    assert (r.status_code, r.json()) == (200, {"released": False})


async def test_vci_lease_runs_out_on_the_vci_clock(api: Api) -> None:
    await api.client.post("/vci/reservation", json={"owner": "ws-01", "lease_s": 5})
    api.vehicle.clock += 1e6  # simulated time does not age a lease
    assert (await api.client.get("/vci")).json()["owner"] == "ws-01"
    api.clock.now += 5
    assert (await api.client.get("/vci")).json()["owner"] is None
    r = await api.client.post("/vci/reservation", json={"owner": "ws-02", "lease_s": 5})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"owner": "", "lease_s": 5},
        {"owner": " ", "lease_s": 5},
        {"owner": "a\tb", "lease_s": 5},
        {"owner": "x" * 65, "lease_s": 5},
        {"owner": "ws", "lease_s": 0},
        {"owner": "ws", "lease_s": 1e9},
        {"owner": "ws"},
        {"owner": 5, "lease_s": 5},
    ],
)
async def test_vci_reservation_rejects_bad_requests_with_422(api: Api, body: Any) -> None:
    r = await api.client.post("/vci/reservation", json=body)
    assert r.status_code == 422
    assert r.json()["error"]


async def test_two_workstations_reserving_at_once_exactly_one_wins(api: Api) -> None:
    for round_ in range(10):
        owners = [f"ws-a{round_}", f"ws-b{round_}"]
        answers = await asyncio.gather(
            *(api.client.post("/vci/reservation", json={"owner": o, "lease_s": 60}) for o in owners)
        )
        assert sorted(r.status_code for r in answers) == [200, 409]
        winner = next(r.json()["owner"] for r in answers if r.status_code == 200)
        loser = next(r for r in answers if r.status_code == 409)
        assert loser.json()["owner"] == winner
        assert (await api.client.get("/vci")).json()["owner"] == winner
        await api.client.request("DELETE", "/vci/reservation", json={"owner": winner})


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    r = await api.client.get("/nope")
    assert r.status_code == 404
    assert "no route GET /nope" in r.json()["error"]
    r = await api.client.put("/battery", json={"volts": 12})
    assert r.status_code == 405
    assert r.json()["error"]


async def test_close_frees_the_port_and_leaves_no_task() -> None:
    running = await serve_control(create_app(FakeVehicle()))
    server, task, port = running.server, running.task, running.port
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
    await running.close()
    await running.close()
    assert task.done()
    assert not task.cancelled()
    assert server.should_exit
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_answers_are_not_held_back_by_nagle(api: Api) -> None:
    # Without TCP_NODELAY on the accepted socket every answer waits ~40 ms for an ACK.
    assert (await api.client.get("/health")).status_code == 200
    connections = api.running.server.server_state.connections
    sockets = [c.transport.get_extra_info("socket") for c in connections]
    assert sockets
    assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


async def test_a_taken_port_is_a_config_error(api: Api) -> None:
    with pytest.raises(ConfigError, match="another --control-port"):
        await serve_control(create_app(FakeVehicle()), "127.0.0.1", api.port)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.invalid"])
async def test_serve_refuses_anything_but_loopback(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback only"):
        await serve_control(create_app(FakeVehicle()), host, 0)


def test_parse_address() -> None:
    assert [parse_address(a) for a in ["0", "18", "255", "0x12", "0XfF"]] == [0, 18, 255, 18, 255]
    for bad in ["", "256", "0x100", "1e2", " 1", "0b1"]:
        with pytest.raises(ConfigError):
            parse_address(bad)


# --- abuse -------------------------------------------------------------------------------

_HTTPISH = st.builds(
    lambda method, path, headers, body: method + b" " + path + b" HTTP/1.1\r\n" + headers + body,
    st.sampled_from([b"GET", b"POST", b"DELETE", b"P\x00ST", b""]),
    st.sampled_from([b"/health", b"/faults", b"/vci/reservation", b"/%ff", b"*", b""]),
    st.binary(max_size=200).map(lambda b: b"Content-Length: 9\r\n" + b + b"\r\n\r\n"),
    st.binary(max_size=200),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(min_size=1, max_size=2048) | _HTTPISH)
async def test_garbage_on_the_socket_gets_4xx_or_a_close(api: Api, garbage: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    answer = b""
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(garbage)
            await writer.drain()
            writer.write_eof()
            answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:200]
    assert (await api.client.get("/health")).status_code == 200


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    ["volts", "charger", "kind", "after_bytes", "ecu", "service", "nth", "nrc", "at",
     "duration", "count", "owner", "lease_s", "address", "name"]
)  # fmt: skip
_NEAR_MISS = st.dictionaries(_FIELDS, _JSON, max_size=6)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from([*POST_ROUTES, "DELETE /vci/reservation"]),
    body=_JSON | _NEAR_MISS,
)
async def test_random_json_bodies_never_get_a_5xx(api: Api, route: str, body: Any) -> None:
    method, path = route.split(" ") if " " in route else ("POST", route)
    r = await api.client.request(
        method,
        path,
        content=json.dumps(body).encode(),  # may hold NaN and Infinity, as Python writes them
        headers={"content-type": "application/json"},
    )
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert isinstance(r.json()["error"], str)
