"""Garbage for every socket of the assembled simulator, and what a good answer to it is.

Shared by ``tests/sim/test_garbage.py`` (a hundred examples per socket in the test suite)
and ``bench/fuzz.py`` (tens of thousands, ``make fuzz``). One F-series car (DoIP TCP and
UDP, HSFZ TCP and UDP, the HTTP control API) and one E-series car (the VCI's socketcand
D-CAN bridge) run on an event loop in a thread of their own (:class:`Vehicles`), with our
own links connected to them as well-behaved testers. Each ``check_*`` function sends one
garbage input on a fresh connection or datagram and asserts the protocol's own refusal
(DoIP generic header NACK, an HSFZ error word, HTTP 4xx, socketcand ``< error ... >``) or a
close; :meth:`Vehicles.assert_serving` then has the good testers read the VIN (F190) over
DoIP, HSFZ and D-CAN and asserts that nothing was logged at ERROR by asyncio, uvicorn or
ecuworks.

Everything here talks through blocking sockets (each with a timeout), so hypothesis drives
it as usual; the simulators never share a loop with the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

from hypothesis import strategies as st

from ecuworks.errors import ParseError
from ecuworks.sim.simulator import Simulator
from ecuworks.transport.base import Link
from ecuworks.transport.doip import DoipLink
from ecuworks.transport.hsfz import HsfzLink
from ecuworks.transport.url import open_link
from ecuworks.uds.client import UdsClient
from ecuworks.wire import doip, hsfz

__all__ = [
    "DOIP_GARBAGE",
    "HOST",
    "HSFZ_GARBAGE",
    "HTTP_GARBAGE",
    "MAX_READS",
    "SOCKETCAND_GARBAGE",
    "SOCKET_TIMEOUT_S",
    "Vehicles",
    "check_control_api",
    "check_doip_tcp",
    "check_doip_udp",
    "check_hsfz_tcp",
    "check_hsfz_udp",
    "check_vci_bridge",
    "tcp_exchange",
    "udp_exchange",
]

HOST: Final = "127.0.0.1"
SOCKET_TIMEOUT_S: Final = 5.0  # the longest any socket operation may block
MAX_READS: Final = 10_000  # bounds every read-until-closed loop
_T = TypeVar("_T")


class _Errors(logging.Handler):
    """Keeps every record at ERROR or above (asyncio's 'Task exception was never ...')."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def ours(self) -> list[str]:
        """What asyncio, uvicorn or ecuworks logged at ERROR, formatted."""
        roots = ("asyncio", "uvicorn", "ecuworks")
        return [
            f"{r.name}: {r.getMessage()}" for r in self.records if r.name.split(".")[0] in roots
        ]


class Vehicles:
    """Two simulated cars and three good testers on an event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="simulated-vehicles", daemon=True
        )
        self._stack = contextlib.AsyncExitStack()
        self.errors = _Errors()
        self.f: Simulator
        self.e: Simulator
        self._readers: list[tuple[Link, int]] = []

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        """Run ``coro`` on the vehicles' loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        logging.getLogger().addHandler(self.errors)
        self._thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        enter = self._stack.enter_async_context
        self.f = await enter(Simulator.on_free_ports("f-series", time_scale=1000))
        self.e = await enter(Simulator.on_free_ports("e-series", time_scale=1000))
        doip_link = await enter(DoipLink(HOST, self.f.ports["doip"]))
        hsfz_link = await enter(HsfzLink(HOST, self.f.ports["hsfz"]))
        can = await enter(
            open_link(f"can://socketcand/can0?host={HOST}&port={self.e.ports['vci']}")
        )
        f_gateway, e_gateway = self.f.state.gateway_address, self.e.state.gateway_address
        self._readers = [(doip_link, f_gateway), (hsfz_link, f_gateway), (can, e_gateway)]

    async def _vins(self) -> list[bytes]:
        return list(
            await asyncio.gather(
                *(UdsClient(link, address).read_did(0xF190) for link, address in self._readers)
            )
        )

    def assert_serving(self) -> None:
        """The good testers read the VIN over DoIP, HSFZ and D-CAN; nothing logged."""
        expected = [self.f.state.vin.encode()] * 2 + [self.e.state.vin.encode()]
        assert self.run(self._vins()) == expected
        assert self.errors.ours() == []

    def stop(self) -> None:
        try:
            self.run(self._stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(SOCKET_TIMEOUT_S)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()
            logging.getLogger().removeHandler(self.errors)


# --- blocking socket helpers -----------------------------------------------------------------


def tcp_exchange(port: int, garbage: bytes, *, greeting: int = 0) -> tuple[bytes, bytes]:
    """Connect, read ``greeting`` bytes, send ``garbage``, half-close, read until closed.

    Returns:
        The greeting and everything the server sent after it; a reset counts as closed.
    """
    with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT_S) as sock:
        hello = b""
        while len(hello) < greeting and (chunk := sock.recv(greeting - len(hello))):
            hello += chunk
        answer = bytearray()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            for _ in range(MAX_READS):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            else:
                raise AssertionError("the server kept talking and never closed")
    return hello, bytes(answer)


def udp_exchange(
    port: int, garbage: bytes, probe: bytes, is_answer: Callable[[bytes], bool]
) -> list[bytes]:
    """Send ``garbage`` then ``probe`` in datagrams; every datagram until the probe's answer.

    UDP has no close, so the probe's answer marks the end of what the garbage caused: on
    loopback datagrams from one socket arrive in order.
    """
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(SOCKET_TIMEOUT_S)
        sock.bind((HOST, 0))
        if garbage:
            sock.sendto(garbage, (HOST, port))
        sock.sendto(probe, (HOST, port))
        for _ in range(MAX_READS):
            datagram = sock.recv(65536)
            received.append(datagram)
            if is_answer(datagram):
                return received
    raise AssertionError("no answer to the probe")


# --- DoIP -------------------------------------------------------------------------------------

_DOIP_HEADERS = st.builds(
    lambda version, payload_type, length: struct.pack(
        ">BBHI", version, version ^ 0xFF, payload_type, length
    ),
    st.sampled_from([0x02, 0x03, 0xFF]),
    st.sampled_from([0x0000, 0x0001, 0x0005, 0x0007, 0x0008, 0x4001, 0x4003, 0x8001, 0xBEEF]),
    st.integers(0, 70_000),
)
DOIP_GARBAGE: Final = st.binary(max_size=600) | st.tuples(
    _DOIP_HEADERS, st.binary(max_size=300)
).map(b"".join)


def _tcp_answers_only(port: int, garbage: bytes, decoder: Any, allowed: Any) -> None:
    """Send ``garbage``; the answer must be whole frames, each an instance of ``allowed``."""
    _, answer = tcp_exchange(port, garbage)
    messages = decoder.feed(answer)
    assert decoder.pending == 0, f"a partial frame: {answer.hex()}"
    for message in messages:
        assert isinstance(message, allowed), message


def check_doip_tcp(vehicles: Vehicles, garbage: bytes) -> None:
    """DoIP TCP answers garbage with a NACK or a close, and never half a frame."""
    # A NACK, or what a header-shaped example happened to ask for in good form (an alive
    # check request from the tester is answered, as lenient entities do).
    allowed = (
        doip.GenericNack
        | doip.RoutingActivationResponse
        | doip.DiagnosticMessageNack
        | doip.AliveCheckRequest
        | doip.AliveCheckResponse
    )
    _tcp_answers_only(vehicles.f.ports["doip"], garbage, doip.DoipDecoder(), allowed)


def check_doip_udp(vehicles: Vehicles, garbage: bytes) -> None:
    """DoIP UDP answers garbage with a NACK or nothing, and still identifies the vehicle."""

    def announcement(datagram: bytes) -> bool:
        return isinstance(doip.parse(datagram), doip.VehicleAnnouncement)

    probe = doip.VehicleIdentificationRequest().encode()
    for datagram in udp_exchange(vehicles.f.ports["doip"], garbage, probe, announcement):
        assert isinstance(
            doip.parse(datagram),
            doip.GenericNack
            | doip.VehicleAnnouncement
            | doip.EntityStatusResponse
            | doip.PowerModeResponse,
        )


# --- HSFZ -------------------------------------------------------------------------------------

# Well-formed diagnostic frames carrying garbage UDS to ECUs other than the gateway (the good
# tester reads the gateway, and a garbage reset of it would be a fair answer, not a failure).
_HSFZ_DIAGNOSTIC = st.builds(
    lambda target, payload: hsfz.encode_diagnostic(0xF4, target, payload),
    st.sampled_from([0x12, 0x18, 0x29, 0x60, 0x63, 0x99, 0xF4]),
    st.binary(min_size=1, max_size=64),
)
_HSFZ_HEADERS = st.builds(
    lambda length, control: struct.pack(">IH", length, control),
    st.integers(0, 90_000),
    st.sampled_from([0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x40, 0x45, 0xFF, 0x1234]),
)
HSFZ_GARBAGE: Final = (
    st.binary(max_size=600)
    | st.tuples(_HSFZ_HEADERS, st.binary(max_size=300)).map(b"".join)
    | st.lists(_HSFZ_DIAGNOSTIC, min_size=1, max_size=4).map(b"".join)
)


def check_hsfz_tcp(vehicles: Vehicles, garbage: bytes) -> None:
    """HSFZ TCP answers garbage with error words or a close, and never half a frame."""
    allowed = (
        hsfz.ErrorFrame
        | hsfz.Acknowledge
        | hsfz.DiagnosticMessage
        | hsfz.IdentificationReply
        | hsfz.AliveCheck
    )
    _tcp_answers_only(vehicles.f.ports["hsfz"], garbage, hsfz.HsfzDecoder(), allowed)


def check_hsfz_udp(vehicles: Vehicles, garbage: bytes) -> None:
    """HSFZ UDP ignores garbage (no error reply exists there) and still identifies."""

    def identification(datagram: bytes) -> bool:
        with contextlib.suppress(ParseError):
            return isinstance(hsfz.parse(datagram), hsfz.IdentificationReply)
        return False

    probe = hsfz.IdentificationRequest().encode()
    received = udp_exchange(vehicles.f.ports["hsfz-udp"], garbage, probe, identification)
    # Only identifications come back (garbage may ask for one).
    assert all(identification(datagram) for datagram in received)
    assert vehicles.f.state.vin.encode() in received[-1]


# --- the control API --------------------------------------------------------------------------

_HTTPISH = st.builds(
    lambda method, path, headers, body: method + b" " + path + b" HTTP/1.1\r\n" + headers + body,
    st.sampled_from([b"GET", b"POST", b"DELETE", b"P\x00ST", b""]),
    st.sampled_from([b"/state", b"/faults", b"/battery", b"/ecus/0x12/replace", b"/%ff", b""]),
    st.binary(max_size=200).map(lambda b: b"Content-Length: 9\r\n" + b + b"\r\n\r\n"),
    st.binary(max_size=200),
)
HTTP_GARBAGE: Final = st.binary(min_size=1, max_size=2048) | _HTTPISH


def check_control_api(vehicles: Vehicles, garbage: bytes) -> None:
    """The control API answers garbage with a 4xx or a close."""
    _, answer = tcp_exchange(vehicles.f.ports["control"], garbage)
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:300]


# --- the VCI's D-CAN bridge -------------------------------------------------------------------

_SOCKETCAND_WORDS = [b"<", b">", b" ", b"open", b"can0", b"rawmode", b"send", b"123", b"8", b"\n"]
SOCKETCAND_GARBAGE: Final = st.binary(min_size=1, max_size=600) | st.lists(
    st.sampled_from(_SOCKETCAND_WORDS), min_size=1
).map(b"".join)


def check_vci_bridge(vehicles: Vehicles, garbage: bytes) -> None:
    """The D-CAN bridge greets, then answers garbage with ``< error ... >`` or a close."""
    hello, answer = tcp_exchange(vehicles.e.ports["vci"], garbage, greeting=len(b"< hi >"))
    assert hello == b"< hi >"
    elements = answer.replace(b"><", b">\x00<").split(b"\x00") if answer else []
    for element in elements:
        assert element.startswith(b"< "), answer
        assert element.endswith(b" >"), answer
        assert element.split()[1] in (b"ok", b"error", b"frame", b"echo"), element
