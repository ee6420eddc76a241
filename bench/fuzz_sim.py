"""The fuzz targets over the simulator: ISO-TP both ways, the ECUs' UDS servers, the sockets.

In-process (fast, most of the inputs):

- ``sim isotp``: the simulator's ISO-TP frame codec and endpoint (``ecuworks.sim.isotp``).
  A clean segmented request from a tester endpoint must arrive whole; then arbitrary
  frames, sends and timeouts must raise nothing, and every frame the ECU emits must be a
  valid frame of its size from its address.
- ``transport isotp``: the tester's ISO-TP, can-isotp with the parameters and BMW D-CAN
  addressing of :class:`~ecuworks.transport.isotp.IsotpLink`, receiving an answer the
  simulator's endpoint segments, with garbage frames from other ECUs routed past it the
  way the link's router does: the answer must arrive exactly. Garbage on the ECU's own id
  may break a transfer, but only through can-isotp's error handler.
- ``ecu uds``: every ECU of the F-series car as a sans-I/O UDS server (``EcuServer``),
  fed sequences of requests: arbitrary ones, built on the services it offers, and macros
  that unlock security with the right key and download to a real region, so that the
  programming services are reached. Each answer must be ``7F <sid> <nrc>`` or
  ``<sid + 0x40> ...``, 0x78s come first with non-decreasing delays, and functional
  requests never get the NRCs ISO 14229-1 suppresses for them.

Over loopback sockets (``tests/sim/garbage.py``'s cars and checks): DoIP TCP and UDP, HSFZ
TCP and UDP, the control API, the VCI's socketcand bridge, and ``uds over doip``: a
routing-activated DoIP connection sending well-formed diagnostic messages with arbitrary
UDS requests to every ECU address, each followed by a TesterPresent probe that the ECU
must answer (so its server is still alive), every answer being a UDS response to the
last request its ECU got. Every :data:`SERVING_EVERY` socket inputs, and at the end, the
good testers must still read the VIN over DoIP, HSFZ and D-CAN, and nothing may be logged
at ERROR.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
import struct
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import isotp
from hypothesis import strategies as st
from tests.sim.garbage import (
    DOIP_GARBAGE,
    HOST,
    HSFZ_GARBAGE,
    HTTP_GARBAGE,
    SOCKET_TIMEOUT_S,
    SOCKETCAND_GARBAGE,
    Vehicles,
    check_control_api,
    check_doip_tcp,
    check_doip_udp,
    check_hsfz_tcp,
    check_hsfz_udp,
    check_vci_bridge,
)

from bench.fuzz_wire import SOCKET_SHARE, Target, in_process
from ecuworks.errors import ParseError
from ecuworks.profiles import load_profile
from ecuworks.sim import isotp as sim_isotp
from ecuworks.sim.ecu import EcuServer, Reply
from ecuworks.sim.state import VehicleState
from ecuworks.transport.isotp import BMW_DCAN, default_params
from ecuworks.wire import doip, uds

__all__ = ["SERVING_EVERY", "Garage", "sim_targets"]

SERVING_EVERY: Final = 25  # socket inputs between two checks that the good testers work
_ECU: Final = 0x12  # the DME on D-CAN
_TESTER: Final = sim_isotp.BMW_TESTER_ADDRESS
_MAX_STEPS: Final = 5_000  # bounds every exchange pumped between two state machines

# --- the simulator's ISO-TP ------------------------------------------------------------------

_CAN_LENGTHS: Final = [1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 12, 16, 64, 9]


@st.composite
def _can_frame(draw: st.DrawFn) -> bytes:
    """A D-CAN data field: an address byte, a PCI of any type, data to a CAN(-FD) length."""
    length = draw(st.sampled_from(_CAN_LENGTHS))
    address = draw(st.sampled_from([_ECU, _ECU, 0xDF, _TESTER, 0x00]))
    pci = draw(st.integers(0, 4)) << 4 | draw(st.integers(0, 15))
    return bytes([address, pci]) + draw(st.binary(min_size=length, max_size=length))[: length - 2]


_ENDPOINT_OP: Final = st.one_of(
    _can_frame().map(lambda frame: ("feed", frame)),
    st.binary(min_size=1, max_size=300).map(lambda payload: ("send", payload)),
    st.floats(0, 3).map(lambda dt: ("wait", dt)),
)
_ENDPOINT_INPUT: Final = st.tuples(
    st.sampled_from([8, 8, 12, 64]),  # the ECU's TX_DL
    st.integers(0, 3),  # its block size
    st.sampled_from([0xFFF, 64, 5000]),  # the longest request it takes
    st.binary(min_size=1, max_size=200),  # a clean request first
    st.lists(_ENDPOINT_OP, max_size=12),
)


def _frame_round_trip(frame: bytes) -> None:
    """A frame that parses re-encodes to one that parses the same (fields, data prefix)."""
    try:
        address, pdu = sim_isotp.parse_frame(frame, extended=True)
    except ParseError:
        return
    try:
        again = sim_isotp.encode_frame(pdu, address=address, padding=None, fd=True)
    except ValueError:  # an escaped single frame too long for its own frame: fine
        return
    _, back = sim_isotp.parse_frame(again, extended=True)
    assert type(back) is type(pdu), (frame.hex(), pdu, back)
    if isinstance(pdu, sim_isotp.FirstFrame | sim_isotp.ConsecutiveFrame):
        assert isinstance(back, sim_isotp.FirstFrame | sim_isotp.ConsecutiveFrame)
        assert back.data.startswith(pdu.data), (frame.hex(), pdu, back)
    else:
        assert back == pdu, (frame.hex(), pdu, back)


def _check_events(
    endpoint: sim_isotp.IsotpEndpoint, events: list[sim_isotp.Event], sent: list[bytes]
) -> list[bytes]:
    """Every frame the ECU sends is one valid frame from its address; returns messages."""
    received = []
    for event in events:
        if isinstance(event, sim_isotp.SendFrames):
            sent.extend(frame.data for frame in event.frames)
        elif isinstance(event, sim_isotp.MessageReceived):
            assert 0 < len(event.payload) <= endpoint.max_message, event
            received.append(event.payload)
    for data in sent:
        assert len(data) <= endpoint.frame_data, data.hex()
        address, _ = sim_isotp.parse_frame(data, extended=True)
        assert address == _TESTER, data.hex()
    return received


def _tester_for(ecu: sim_isotp.IsotpEndpoint) -> sim_isotp.IsotpEndpoint:
    """The tester's side of ``ecu``'s D-CAN link, sending requests in the ECU's frame size."""
    return sim_isotp.IsotpEndpoint(
        rx_id=ecu.tx_id,
        tx_id=ecu.rx_id,
        addressing="extended",
        rx_ext_address=_TESTER,
        tx_ext_address=_ECU,
        frame_data=ecu.frame_data,
        padding=0xFF,
        max_message=0xFFFF_FFFF,
    )


def _request_arrives_whole(ecu: sim_isotp.IsotpEndpoint, payload: bytes) -> None:
    """A clean segmented request from a tester endpoint reaches the ECU unchanged."""
    tester = _tester_for(ecu)
    to_ecu = deque(frame.data for frame in tester.send(payload, 0.0))
    to_tester: deque[bytes] = deque()
    got: list[bytes] = []
    for _ in range(_MAX_STEPS):
        if to_ecu:
            sent: list[bytes] = []
            got += _check_events(ecu, ecu.feed(to_ecu.popleft(), 0.0), sent)
            to_tester.extend(sent)
        elif to_tester:
            for event in tester.feed(to_tester.popleft(), 0.0):
                if isinstance(event, sim_isotp.SendFrames):
                    to_ecu.extend(frame.data for frame in event.frames)
        else:
            break
    expected = [payload] if len(payload) <= ecu.max_message else []
    assert got == expected, f"request {payload.hex()} arrived as {[g.hex() for g in got]}"


def _run_endpoint(example: tuple[int, int, int, bytes, list[tuple[str, Any]]]) -> int:
    frame_data, block_size, max_message, request, ops = example
    ecu = sim_isotp.IsotpEndpoint.bmw_dcan(
        _ECU, frame_data=frame_data, block_size=block_size, max_message=max_message
    )
    _request_arrives_whole(ecu, request)
    now = 0.0
    inputs = 1  # the clean request, then every frame and payload (waits are no input)
    for kind, value in ops:
        sent: list[bytes] = []
        inputs += kind != "wait"
        if kind == "feed":
            _frame_round_trip(value)
            _check_events(ecu, ecu.feed(value, now), sent)
        elif kind == "send":
            sent.extend(frame.data for frame in ecu.send(value, now))
            _check_events(ecu, [], sent)
        else:
            now += value
            _check_events(ecu, ecu.poll(now), sent)
    return inputs


# --- the tester's ISO-TP (can-isotp with the link's parameters) -------------------------------

_STRAY: Final = st.tuples(
    st.sampled_from([0x600 + _ECU, 0x600 + _ECU, 0x613, 0x6F1, 0x600 + _TESTER, 0x7E8]),
    st.binary(min_size=1, max_size=8).map(lambda b: bytes([_TESTER]) + b[:7])
    | st.binary(max_size=8),
)
_TRANSPORT_INPUT: Final = st.tuples(
    st.binary(min_size=1, max_size=600),  # the ECU's answer
    st.sampled_from([0, 0, 1, 2, 8]),  # the block size the tester's flow control asks for
    st.lists(st.tuples(st.integers(0, 200), _STRAY), max_size=6),  # (when, frame)
)


class _Tester:
    """can-isotp's state machine for one ECU, routed to as ``IsotpLink._route`` does."""

    def __init__(self, block_size: int) -> None:
        params = default_params(BMW_DCAN, fd=False)
        params["blocksize"] = block_size
        self.inbox: deque[isotp.CanMessage] = deque()
        self.outbox: list[isotp.CanMessage] = []
        self.errors: list[Exception] = []
        self.stack = isotp.TransportLayerLogic(
            rxfn=lambda _timeout: self.inbox.popleft() if self.inbox else None,
            txfn=self.outbox.append,
            address=BMW_DCAN.physical(_ECU, tester=_TESTER),
            error_handler=self.errors.append,
            params=params,
        )

    def route(self, arbitration_id: int, data: bytes) -> bool:
        """Queue a frame if the link's router gives it to this ECU's stack; whether it did."""
        source = BMW_DCAN.source_of(arbitration_id, False, data, tester=_TESTER)
        if source != _ECU:
            return False
        self.inbox.append(isotp.CanMessage(arbitration_id=arbitration_id, dlc=len(data), data=data))
        return True

    def pump(self) -> list[bytes]:
        """Run the stack; the flow control frames it sent since the last pump."""
        self.stack.process()
        sent = [bytes(message.data) for message in self.outbox]
        self.outbox.clear()
        return sent


def _run_transport(example: tuple[bytes, int, list[tuple[int, tuple[int, bytes]]]]) -> int:
    answer, block_size, strays = example
    ecu = sim_isotp.IsotpEndpoint.bmw_dcan(_ECU)
    tester = _Tester(block_size)
    pending = sorted(strays, key=lambda stray: stray[0])
    to_tester = deque(frame.data for frame in ecu.send(answer, 0.0))
    disturbed = False
    for step in range(_MAX_STEPS):
        while pending and pending[0][0] <= step:
            _, (arbitration_id, data) = pending.pop(0)
            disturbed |= tester.route(arbitration_id, data)
        if to_tester:
            tester.route(ecu.tx_id, to_tester.popleft())
        for flow_control in tester.pump():
            for event in ecu.feed(flow_control, 0.0):
                if isinstance(event, sim_isotp.SendFrames):
                    to_tester.extend(frame.data for frame in event.frames)
        if not to_tester and not tester.inbox and not pending:
            break
    received = tester.stack.recv()
    assert all(isinstance(error, isotp.errors.IsoTpError) for error in tester.errors)
    if not disturbed:
        assert received is not None, f"answer {answer.hex()} never arrived"
        assert bytes(received) == answer, f"answer {answer.hex()} arrived as {received!r}"
        assert tester.errors == []
    return 1 + len(strays)


# --- the ECUs' UDS servers ------------------------------------------------------------------

_PROFILE: Final = load_profile("f-series")
_ADDRESSES: Final = sorted(VehicleState.from_profile(_PROFILE).ecus)
_UDS_SIDS: Final = sorted({*uds.ServiceId, 0x00, 0x7F, 0xBF, 0xFF})
_SUBS: Final = [0x00, 0x01, 0x02, 0x03, 0x11, 0x12, 0x41, 0x81, 0x82, 0x83, 0x7F]
_DIDS: Final = [bytes(struct.pack(">H", did)) for did in uds.Did] + [b"\xf1\x8c", b"\x30\x00"]
_ROUTINES: Final = [struct.pack(">H", routine) for routine in uds.Routine]


@st.composite
def _uds_request(draw: st.DrawFn) -> bytes:
    """A service id, then a sub-function, DID or routine id, then arbitrary parameters."""
    sid = draw(st.sampled_from(_UDS_SIDS))
    head = draw(
        st.one_of(
            st.sampled_from(_SUBS).map(lambda sub: bytes([sub])),
            st.sampled_from(_DIDS),
            st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from(_ROUTINES)).map(
                lambda routine: bytes([routine[0]]) + routine[1]
            ),
            st.binary(max_size=2),
        )
    )
    return bytes([sid]) + head + draw(st.binary(max_size=24))


_ECU_OP: Final = st.one_of(
    st.tuples(st.just("request"), _uds_request(), st.booleans()),
    st.tuples(st.just("session"), st.sampled_from([0x01, 0x02, 0x03, 0x41]), st.just(False)),
    st.tuples(st.just("unlock"), st.sampled_from([0x01, 0x11]), st.just(False)),
    st.tuples(st.just("download"), st.integers(0, 2**32 - 1), st.booleans()),
    st.tuples(st.just("wait"), st.floats(0, 12), st.just(False)),
)
_ECU_INPUT: Final = st.tuples(st.sampled_from(_ADDRESSES), st.lists(_ECU_OP, max_size=16))

# ISO 14229-1: not sent to functionally addressed requests.
_FUNCTIONAL_SILENT: Final = frozenset({0x11, 0x12, 0x31, 0x7E, 0x7F})


class _Bench:
    """One ECU's server and the time, checking every answer it gives."""

    def __init__(self, address: int) -> None:
        vehicle = VehicleState.from_profile(_PROFILE)
        self.state = vehicle.ecus[address]
        self.server = EcuServer(self.state, vehicle, seed=address)
        self.now = 0.0
        self.requests = 0

    def ask(self, request: bytes, *, functional: bool = False) -> bytes | None:
        """Send one request at ``now``, move ``now`` past its answers; the final answer."""
        self.requests += 1
        replies = self.server.handle(request, self.now, functional=functional)
        _check_replies(request, replies, functional=functional)
        if replies:
            self.now += replies[-1].delay
            return replies[-1].data
        return None

    def unlock(self, level: int) -> None:
        """Security access with the right key (DESIGN.md's hmac-sha256)."""
        answer = self.ask(bytes([0x27, level]))
        if answer is None or answer[0] != 0x67 or not any(answer[2:]):
            return
        seed = answer[2:]
        key = hmac.new(self.state.security_secret, seed, hashlib.sha256).digest()[: len(seed)]
        self.ask(bytes([0x27, level + 1]) + key)

    def download(self, key: int, finish: bool) -> None:
        """34 to a real region (size from ``key``), a few 36 blocks, then 37 and 0202."""
        region = self.state.regions[key % len(self.state.regions)]
        size = 1 + key % min(region.size, 4096)
        data = key.to_bytes(4, "big") * (size // 4 + 1)
        location = uds.encode_memory_location(region.address, size, address_bytes=4, size_bytes=4)
        self.ask(bytes([0x31, 0x01, 0xFF, 0x00]) + location)
        answer = self.ask(bytes([0x34, 0x00]) + location)
        block = 256
        if answer is not None and answer[0] == 0x74:
            with contextlib.suppress(ParseError):
                block = uds.decode_max_block_length(answer) - 2
        for counter, start in enumerate(range(0, size, block), start=1):
            self.ask(bytes([0x36, counter & 0xFF]) + data[start : min(start + block, size)])
        if finish:
            self.ask(b"\x37")
            self.ask(b"\x31\x01\x02\x02" + zlib.crc32(data[:size]).to_bytes(4, "big"))
            self.ask(b"\x31\x01\xff\x01")


def _check_replies(request: bytes, replies: list[Reply], *, functional: bool) -> None:
    """Each reply answers ``request``: 0x78s first, delays non-decreasing, then the final."""
    sid = request[0] if request else None
    last = 0.0
    for number, reply in enumerate(replies):
        data = reply.data
        assert reply.delay >= last, replies
        last = reply.delay
        final = number == len(replies) - 1
        if data[:1] == b"\x7f":
            assert len(data) == 3, (request.hex(), data.hex())
            assert data[1] == sid, (request.hex(), data.hex())
            assert (data[2] == 0x78) != final, (request.hex(), replies)
            assert not (functional and data[2] in _FUNCTIONAL_SILENT), (request.hex(), data.hex())
        else:
            assert final, (request.hex(), replies)
            assert sid is not None, replies
            assert data[0] == sid + 0x40, (request.hex(), data.hex())


def _run_ecu(example: tuple[int, list[tuple[str, Any, bool]]]) -> int:
    address, ops = example
    bench = _Bench(address)
    for kind, value, flag in ops:
        if kind == "request":
            bench.ask(value, functional=flag)
        elif kind == "session":
            bench.ask(bytes([0x10, 0x03]))
            bench.ask(bytes([0x10, value]))
        elif kind == "unlock":
            bench.unlock(value)
        elif kind == "download":
            bench.download(value, flag)
        else:
            bench.now += value
            deadline = bench.server.next_deadline()
            if deadline is not None and deadline <= bench.now:
                bench.server.poll(bench.now)
    return bench.requests


# --- the sockets ----------------------------------------------------------------------------


class Garage:
    """The simulated cars the socket targets share, started on first use."""

    def __init__(self) -> None:
        self._vehicles: Vehicles | None = None
        self._since_check = 0
        self._problems: list[str] = []
        self._uds: _UdsTester | None = None

    def vehicles(self) -> Vehicles:
        """The running cars (started now if need be)."""
        if self._vehicles is None:
            self._vehicles = Vehicles()
            self._vehicles.start()
        return self._vehicles

    def counted(self) -> None:
        """One socket input done; every :data:`SERVING_EVERY`, the good testers must work."""
        self._since_check += 1
        if self._since_check >= SERVING_EVERY:
            self._since_check = 0
            self.vehicles().assert_serving()

    def uds(self) -> _UdsTester:
        """The routing-activated DoIP connection of the ``uds over doip`` target."""
        if self._uds is None:
            self._uds = _UdsTester(self.vehicles().f.ports["doip"])
        return self._uds

    def close(self) -> None:
        """Check the good testers a last time, then stop everything."""
        if self._uds is not None:
            self._uds.close()
        if self._vehicles is None:
            return
        try:
            self._vehicles.assert_serving()
        except (AssertionError, TimeoutError, OSError) as error:
            self._problems.append(f"the good testers failed at the end: {error!r}")
        finally:
            self._vehicles.stop()
        self._problems.extend(self._vehicles.errors.ours())

    def problems(self) -> list[str]:
        """What went wrong outside any one input (after :meth:`close`)."""
        return self._problems


_FUZZ_TESTER: Final = 0x0EF4  # not the good tester's 0x0EF3, which keeps its own socket
_PROBE: Final = b"\x3e\x00"
_PROBE_ANSWER: Final = b"\x7e\x00"
_PROBE_TRIES: Final = 20
_PROBE_WAIT_S: Final = 0.25


class _UdsTester:
    """A blocking DoIP tester that sends any UDS request to any ECU and waits it out."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT_S)
        self.decoder = doip.DoipDecoder()
        self.messages: deque[doip.DoipMessage] = deque()
        self.last: dict[int, bytes] = {}  # the last request each ECU got
        self.sock.sendall(doip.RoutingActivationRequest(source_address=_FUZZ_TESTER).encode())
        answer = self.next_message()
        assert isinstance(answer, doip.RoutingActivationResponse), answer
        assert answer.code == doip.RoutingActivationCode.SUCCESS, answer

    def close(self) -> None:
        self.sock.close()

    def next_message(self, timeout: float = SOCKET_TIMEOUT_S) -> doip.DoipMessage | None:
        """The next DoIP message, or None if none came within ``timeout``."""
        self.sock.settimeout(timeout)
        while not self.messages:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            assert chunk, "the gateway closed the fuzzer's DoIP connection"
            self.messages.extend(self.decoder.feed(chunk))
        return self.messages.popleft()

    def send(self, target: int, payload: bytes) -> None:
        self.sock.sendall(doip.encode_diagnostic(_FUZZ_TESTER, target, payload))

    def exchange(self, target: int, request: bytes) -> None:
        """Send ``request``, then probe until the ECU answers; check every answer.

        The gateway serves one connection's requests to one ECU in order, so the probe's
        answer comes after every answer to ``request``. An ECU that reset is silent while
        it boots, so the probe goes again after a while. An answer to an earlier probe
        (or to a garbage TesterPresent) may therefore come late, even during an exchange
        with another ECU: every answer is checked against the last request its ECU got.
        """
        self.last[target] = request
        self.send(target, request)
        for _ in range(_PROBE_TRIES):
            self.send(target, _PROBE)
            while (message := self.next_message(_PROBE_WAIT_S)) is not None:
                if isinstance(message, doip.DiagnosticMessageAck):
                    continue
                assert isinstance(message, doip.DiagnosticMessage), message
                if message.data == _PROBE_ANSWER:
                    if message.source == target:
                        return
                    continue
                earlier = self.last.get(message.source)
                assert earlier is not None, message
                _check_answer(earlier, message.data)
        raise AssertionError(f"ECU 0x{target:02X} stopped answering after {request.hex()}")


def _check_answer(request: bytes, answer: bytes) -> None:
    """``answer`` is a UDS response to ``request``: ``7F <sid> <nrc>`` or ``<sid+0x40>...``."""
    sid = request[0]
    if answer[:1] == b"\x7f":
        assert len(answer) == 3, (request.hex(), answer.hex())
        assert answer[1] in (sid, _PROBE[0]), (request.hex(), answer.hex())
    else:
        assert answer[:1] == bytes([(sid + 0x40) & 0xFF]), (request.hex(), answer.hex())


def _check_uds_over_doip(garage: Garage, example: tuple[int, bytes]) -> None:
    target, request = example
    garage.uds().exchange(target, request)


def _socket_target(
    garage: Garage,
    *,
    name: str,
    what: str,
    strategy: st.SearchStrategy[Any],
    check: Callable[[Any], None],
    rate: float,
) -> Target:
    def run(example: Any) -> int:
        check(example)
        garage.counted()
        return 1

    return Target(
        name=name, what=what, strategy=strategy, run=run, share=SOCKET_SHARE, quick=40, rate=rate
    )


def _on_cars(garage: Garage, check: Callable[[Vehicles, Any], None]) -> Callable[[Any], None]:
    """``check`` applied to the garage's cars (started on first use)."""
    return lambda garbage: check(garage.vehicles(), garbage)


def sim_targets(garage: Garage) -> list[Target]:
    """The simulator's targets, in-process ones first."""
    sockets = [
        ("doip tcp", "garbage on DoIP TCP: a NACK or a close", DOIP_GARBAGE, check_doip_tcp, 700),
        ("doip udp", "garbage on DoIP UDP: a NACK or nothing", DOIP_GARBAGE, check_doip_udp, 900),
        (
            "hsfz tcp",
            "garbage on HSFZ TCP: error words or a close",
            HSFZ_GARBAGE,
            check_hsfz_tcp,
            500,
        ),
        (
            "hsfz udp",
            "garbage on HSFZ UDP: ignored, still identifies",
            HSFZ_GARBAGE,
            check_hsfz_udp,
            900,
        ),
        (
            "control api",
            "garbage on the control API: 4xx or a close",
            HTTP_GARBAGE,
            check_control_api,
            300,
        ),
        (
            "vci bridge",
            "garbage on socketcand D-CAN: < error > or a close",
            SOCKETCAND_GARBAGE,
            check_vci_bridge,
            500,
        ),
    ]
    targets = [
        in_process(
            "sim isotp",
            "sim ISO-TP: a clean request arrives whole; then any frames, sends, timeouts",
            _ENDPOINT_INPUT,
            _run_endpoint,
            1750,
        ),
        in_process(
            "transport isotp",
            "can-isotp as the link sets it up, fed the sim's answer and stray frames",
            _TRANSPORT_INPUT,
            _run_transport,
            850,
        ),
        in_process(
            "ecu uds",
            "every F-series ECU's UDS server: requests, unlock, download; answers well-formed",
            _ECU_INPUT,
            _run_ecu,
            4200,
        ),
    ]
    for name, what, strategy, check, rate in sockets:
        targets.append(
            _socket_target(
                garage,
                name=name,
                what=what,
                strategy=strategy,
                check=_on_cars(garage, check),
                rate=rate,
            )
        )
    targets.append(
        _socket_target(
            garage,
            name="uds over doip",
            what="any UDS request to every ECU over DoIP; a UDS answer, then the ECU still answers",
            strategy=st.tuples(st.sampled_from(_ADDRESSES), _uds_request()),
            check=lambda example: _check_uds_over_doip(garage, example),
            rate=500,
        )
    )
    return targets
