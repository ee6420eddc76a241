"""An independent client: stock doipclient + udsoncan against a running simulated vehicle.

This script imports no ``ecuworks`` code (a test checks its imports): everything it knows
about the vehicle comes from ISO 13400-2, ISO 14229-1, DESIGN.md's flash protocol and the
simulator's control API. It does, in order:

1. DoIP vehicle identification: a UDP request (``02 FD 00 01 00 00 00 00``) sent unicast to
   the simulator's DoIP port, the announcement parsed here (VIN, logical address, EID).
2. ``GET /state`` on the control port: VIN, the target ECU's security secret, its first
   SWFL region and programming counter.
3. For three ECUs, one doipclient connection each: routing activation, F190 VIN, F101 SVK.
4. A full flash of one SWFL unit on one ECU: ``10 03``, ``10 02``, ``27 11``/``27 12`` (the
   ``hmac-sha256`` key computed here), ``31 01 FF00`` erase, ``34``, ``36`` blocks, ``37``,
   ``31 01 0202`` CRC-32 check, ``31 01 FF01`` dependency check, ``11 01`` reset; then it
   waits for the ECU to answer again and checks SVK, DID 2502 and ``/state``.

Usage (the simulator is already running)::

    python tests/interop/independent_client.py --doip-port P --control-port C [--ecu 0x12]

Prints one JSON summary on stdout (each step with its request, raw answer and ``ok``).
Exit 0 only when every answer was positive and the programming counter rose by one; 1 with
a message on stderr otherwise (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import udsoncan
from doipclient import DoIPClient
from doipclient.connectors import DoIPClientUDSConnector
from doipclient.messages import RoutingActivationRequest, RoutingActivationResponse
from udsoncan.client import Client
from udsoncan.exceptions import (
    InvalidResponseException,
    NegativeResponseException,
    TimeoutException,
    UnexpectedResponseException,
)

HOST = "127.0.0.1"  # loopback only: this script never sends anywhere else
TESTER_ADDRESS = 0x0EF3
DEFAULT_SVK_ECUS = "0x10,0x12,0x40"  # gateway, DME (pt-canfd), BDC (k-canfd)

# ISO 13400-2 header: protocol version 0x02 (2012), its inverse, payload type, length.
DOIP_HEADER = struct.Struct(">BBHI")
VEHICLE_IDENTIFICATION_REQUEST = bytes.fromhex("02FD000100000000")
VEHICLE_ANNOUNCEMENT = 0x0004

# DID and routine numbers of DOMAIN.md / DESIGN.md.
DID_VIN = 0xF190
DID_SVK = 0xF101
DID_PROGRAMMING_COUNTER = 0x2502
ROUTINE_ERASE = 0xFF00
ROUTINE_CHECK_MEMORY = 0x0202
ROUTINE_CHECK_DEPENDENCIES = 0xFF01
SECURITY_LEVEL = 0x11  # seed 0x11, key 0x12
ALFID_32_32 = 0x44  # 4-byte memory size, 4-byte address

# Process class codes (DOMAIN.md): the first byte of a binary SGBM-ID.
PROCESS_CLASSES = {
    "HWEL": 1, "HWAP": 2, "HWFR": 3, "GWTB": 4, "CAFD": 5, "BTLD": 6, "FLSL": 7,
    "SWFL": 8, "SWFF": 9, "SWPF": 10, "ONPS": 11, "IBAD": 12, "SWFK": 13, "FAFP": 15,
}  # fmt: skip
CLASS_NAMES = {code: name for name, code in PROCESS_CLASSES.items()}

IMAGE_MAGIC = b"EWU1"
IMAGE_HEADER_SIZE = 64

RESET_POLLS = 40  # 3E 00 polls of an ECU that is booting after 11 01 ...
RESET_POLL_TIMEOUT = 0.5  # ... each waiting this long (s) for an answer


class Failure(Exception):
    """A step got no positive answer, or a check failed: the run stops there."""


# -- software unit ids -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sgbm:
    """An SGBM-ID ``CLASS-XXXXXXXX-MMM.mmm.ppp`` and its 8-byte binary form."""

    process_class: str
    unit_id: int
    version: tuple[int, int, int]

    @classmethod
    def parse(cls, text: str) -> Sgbm:
        try:
            name, unit, version = text.split("-")
            main, sub, patch = (int(part) for part in version.split("."))
            if name not in PROCESS_CLASSES or not all(0 <= v <= 255 for v in (main, sub, patch)):
                raise ValueError(text)
            return cls(name, int(unit, 16), (main, sub, patch))
        except ValueError:
            raise Failure(f"not an SGBM-ID: {text!r}") from None

    @classmethod
    def decode(cls, data: bytes) -> Sgbm:
        code, unit_id, main, sub, patch = struct.unpack(">BIBBB", data)
        if code not in CLASS_NAMES:
            raise Failure(f"SVK entry {data.hex()} has unknown process class {code}")
        return cls(CLASS_NAMES[code], unit_id, (main, sub, patch))

    def encode(self) -> bytes:
        code = PROCESS_CLASSES[self.process_class]
        return struct.pack(">BIBBB", code, self.unit_id, *self.version)

    def next_patch(self) -> Sgbm:
        """The same unit one patch level later (carrying into sub, then main)."""
        main, sub, patch = self.version
        patch += 1
        if patch > 255:
            patch, sub = 0, sub + 1
        if sub > 255:
            sub, main = 0, (main + 1) % 256
        return Sgbm(self.process_class, self.unit_id, (main, sub, patch))

    def same_unit(self, other: Sgbm) -> bool:
        return (self.process_class, self.unit_id) == (other.process_class, other.unit_id)

    def __str__(self) -> str:
        main, sub, patch = self.version
        return f"{self.process_class}-{self.unit_id:08X}-{main:03d}.{sub:03d}.{patch:03d}"


class SvkCodec(udsoncan.DidCodec):
    """DID F101: a count byte, then ``count`` 8-byte SGBM-IDs (variable length)."""

    def decode(self, did_payload: bytes) -> list[str]:
        if not did_payload or len(did_payload) != 1 + 8 * did_payload[0]:
            raise Failure(f"SVK record {did_payload.hex()} does not match its count byte")
        entries = [did_payload[1 + 8 * i : 9 + 8 * i] for i in range(did_payload[0])]
        return [str(Sgbm.decode(entry)) for entry in entries]

    def __len__(self) -> int:
        raise udsoncan.DidCodec.ReadAllRemainingData


# -- the run's record ------------------------------------------------------------------------


@dataclass
class Run:
    """Every step with its request, raw answer and verdict; the JSON summary."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def record(self, name: str, *, ok: bool, **details: Any) -> dict[str, Any]:
        step = {"step": name, "ok": ok, **details}
        self.steps.append(step)
        return step

    def check(self, condition: bool, name: str, message: str, **details: Any) -> None:
        """Record a check (no bytes on the wire); a failed one stops the run."""
        self.record(name, ok=condition, **details, **({} if condition else {"error": message}))
        if not condition:
            raise Failure(f"{name}: {message}")

    def summary(self, error: str | None) -> dict[str, Any]:
        ok = error is None and all(step["ok"] for step in self.steps)
        return {"ok": ok, "error": error, **self.facts, "steps": self.steps}


class RecordingConnector(DoIPClientUDSConnector):
    """The stock connector, remembering the last request it sent (for the summary)."""

    last_request: bytes = b""

    def specific_send(self, payload: bytes) -> None:
        self.last_request = bytes(payload)
        super().specific_send(payload)


@dataclass
class Ecu:
    """One doipclient connection to one ECU, with a udsoncan client on it."""

    address: int
    doip: DoIPClient
    connector: RecordingConnector
    client: Client
    pending: int = 0  # 7F xx 78 answers seen during the current request

    @property
    def name(self) -> str:
        return f"0x{self.address:02X}"


def _hex(data: bytes | None, limit: int = 64) -> str | None:
    """Bytes as hex, long ones shortened (a TransferData request carries a block)."""
    if data is None:
        return None
    text = data.hex()
    return text if len(text) <= limit else f"{text[:limit]}...({len(data)} bytes)"


def uds(run: Run, ecu: Ecu, name: str, call: Callable[[Client], Any]) -> Any:
    """Send one request with udsoncan; record it; return the interpreted response."""
    ecu.pending = 0
    ecu.connector.last_request = b""
    try:
        response = call(ecu.client)
    except NegativeResponseException as error:
        answer = error.response.original_payload
        failure = f"negative response {error.response.code_name} (0x{error.response.code:02X})"
    except (InvalidResponseException, UnexpectedResponseException) as error:
        answer = error.response.original_payload
        failure = f"unexpected answer: {error}"
    except (TimeoutException, TimeoutError) as error:
        answer, failure = None, f"no answer: {error}"
    except OSError as error:  # doipclient: DoIP NACK or a closed socket
        answer, failure = None, f"DoIP error: {error}"
    else:
        run.record(
            name,
            ok=True,
            ecu=ecu.name,
            request=_hex(ecu.connector.last_request),
            answer=_hex(response.original_payload),
            **({"pending": ecu.pending} if ecu.pending else {}),
        )
        return response
    run.record(
        name,
        ok=False,
        ecu=ecu.name,
        request=_hex(ecu.connector.last_request),
        answer=_hex(answer),
        error=failure,
    )
    raise Failure(f"{name} on {ecu.name}: {failure}")


def client_config() -> dict[str, Any]:
    """A udsoncan configuration: DID codecs and generous timing."""
    config = dict(udsoncan.configs.default_client_config)
    config.update(
        data_identifiers={
            DID_VIN: udsoncan.AsciiCodec(17),
            DID_SVK: SvkCodec(),
            DID_PROGRAMMING_COUNTER: udsoncan.DidCodec(">H"),
        },
        use_server_timing=False,  # our timeouts, not the session answer's P2/P2*
        p2_timeout=5,
        p2_star_timeout=30,
        request_timeout=60,
    )
    return config


@contextlib.contextmanager
def connect(run: Run, port: int, address: int) -> Iterator[Ecu]:
    """One TCP connection to the DoIP entity, routing activated, targeting ``address``.

    The IP address and the logical address are given, so doipclient does no discovery
    (no broadcast); it binds its sockets to loopback.
    """
    name = f"0x{address:02X}"
    try:
        doip = DoIPClient(
            HOST,
            address,
            tcp_port=port,
            udp_port=port,
            activation_type=None,  # activated below, so that the answer can be recorded
            client_logical_address=TESTER_ADDRESS,
            client_ip_address=HOST,
        )
    except OSError as error:
        run.record("doip connect", ok=False, ecu=name, error=str(error))
        raise Failure(f"cannot connect to DoIP port {port}: {error}") from error
    try:
        try:
            activation = doip.request_activation(
                RoutingActivationRequest.ActivationType.Default, disable_retry=True
            )
        except (OSError, TimeoutError) as error:
            run.record("routing activation", ok=False, ecu=name, error=str(error))
            raise Failure(f"routing activation failed: {error}") from error
        success = RoutingActivationResponse.ResponseCode.Success
        run.check(
            activation.response_code == success,
            "routing activation",
            f"response code 0x{activation.response_code:02X}",
            ecu=name,
            request=RoutingActivationRequest(TESTER_ADDRESS, 0).pack().hex(),
            answer=activation.pack().hex(),
            entity=f"0x{activation.logical_address:04X}",
        )
        connector = RecordingConnector(doip, name=name)
        ecu = Ecu(address, doip, connector, Client(connector, config=client_config()))

        def count_pending() -> None:
            ecu.pending += 1

        ecu.client.set_config("nrc78_callback", count_pending)
        with ecu.client:
            yield ecu
    finally:
        doip.close()


# -- steps -----------------------------------------------------------------------------------


def identify(run: Run, port: int) -> dict[str, Any]:
    """Step 1: DoIP vehicle identification, unicast UDP to the simulator's port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(2.0)
        data = None
        for _attempt in range(3):  # UDP: a lost datagram is retried, at most twice
            sock.sendto(VEHICLE_IDENTIFICATION_REQUEST, (HOST, port))
            try:
                data, _sender = sock.recvfrom(4096)
                break
            except OSError:  # a timeout, or an ICMP port unreachable
                continue
    if data is None:
        run.record("vehicle identification", ok=False, error="no answer in 3 attempts")
        raise Failure(f"vehicle identification: no announcement from {HOST}:{port}")
    return parse_announcement(run, data)


def parse_announcement(run: Run, data: bytes) -> dict[str, Any]:
    """ISO 13400-2 vehicle announcement / identification response (payload type 0x0004)."""
    request = VEHICLE_IDENTIFICATION_REQUEST.hex()
    problem = None
    if len(data) < DOIP_HEADER.size:
        problem = f"{len(data)} bytes is shorter than a DoIP header"
    else:
        version, inverse, payload_type, length = DOIP_HEADER.unpack_from(data)
        payload = data[DOIP_HEADER.size :]
        if version ^ inverse != 0xFF:
            problem = f"bad protocol version bytes {version:02X} {inverse:02X}"
        elif payload_type != VEHICLE_ANNOUNCEMENT:
            problem = f"payload type 0x{payload_type:04X}, expected 0x0004"
        elif length != len(payload) or length not in {32, 33}:
            problem = f"payload length {length} (datagram carries {len(payload)})"
    if problem is not None:
        run.record("vehicle identification", ok=False, request=request, answer=data.hex())
        raise Failure(f"vehicle identification: {problem}")
    announcement = {
        "vin": payload[:17].decode("ascii", "replace"),
        "logical_address": int.from_bytes(payload[17:19], "big"),
        "eid": payload[19:25].hex(),
        "gid": payload[25:31].hex(),
        "further_action": payload[31],
    }
    run.record(
        "vehicle identification",
        ok=True,
        request=request,
        answer=data.hex(),
        **{**announcement, "logical_address": f"0x{announcement['logical_address']:04X}"},
    )
    return announcement


def get_state(run: Run, control_port: int, name: str) -> dict[str, Any]:
    """``GET /state`` from the control API."""
    url = f"http://{HOST}:{control_port}/state"
    try:
        answer = httpx.get(url, timeout=10)
        answer.raise_for_status()
        state = answer.json()
    except (httpx.HTTPError, ValueError) as error:
        run.record(name, ok=False, error=str(error))
        raise Failure(f"{name}: GET {url}: {error}") from error
    run.record(name, ok=True, request=f"GET {url}", vin=state.get("vin"))
    return state


def ecu_state(state: dict[str, Any], address: int) -> dict[str, Any]:
    for ecu in state.get("ecus", []):
        if ecu.get("address") == address:
            return ecu
    raise Failure(f"/state has no ECU at address 0x{address:02X}")


@dataclass(frozen=True)
class Target:
    """What the flash needs to know about the ECU, from ``/state``."""

    address: int
    secret: bytes
    region_address: int
    region_size: int
    unit: Sgbm
    counter: int


def flash_target(run: Run, state: dict[str, Any], address: int) -> Target:
    ecu = ecu_state(state, address)
    security = ecu.get("security", {})
    run.check(
        security.get("algorithm") == "hmac-sha256",
        "security algorithm",
        f"this script computes hmac-sha256 keys only, not {security.get('algorithm')!r}",
        ecu=f"0x{address:02X}",
    )
    # `regions` (ADR 0003) names each region's unit; DESIGN.md's `flash_regions` does not:
    # then the unit is the SVK's first SWFL entry.
    regions = ecu.get("regions") or ecu.get("flash_regions", [])
    swfl = next((region for region in regions if region.get("class") == "SWFL"), None)
    if swfl is None:
        raise Failure(f"/state shows no SWFL region for ECU 0x{address:02X}")
    unit_text = swfl.get("unit") or next(u for u in ecu["svk"] if u.startswith("SWFL-"))
    target = Target(
        address=address,
        secret=bytes.fromhex(security["secret"]),
        region_address=int(swfl["address"]),
        region_size=int(swfl["size"]),
        unit=Sgbm.parse(unit_text),
        counter=int(ecu["programming_counter"]),
    )
    run.facts["flash"] = {
        "ecu": f"0x{address:02X}",
        "name": ecu.get("name"),
        "region": {"address": f"0x{target.region_address:08X}", "size": target.region_size},
        "unit_before": str(target.unit),
    }
    return target


def read_identity(run: Run, port: int, address: int, vin: str) -> list[str]:
    """Step 3 for one ECU: F190 (must be the vehicle's VIN) and F101 (its SVK)."""
    with connect(run, port, address) as ecu:
        read_vin = uds(run, ecu, "read F190 VIN", lambda c: c.read_data_by_identifier(DID_VIN))
        ecu_vin = read_vin.service_data.values[DID_VIN]
        run.check(ecu_vin == vin, "VIN matches", f"{ecu_vin!r} != {vin!r}", ecu=ecu.name)
        read_svk = uds(run, ecu, "read F101 SVK", lambda c: c.read_data_by_identifier(DID_SVK))
        svk: list[str] = read_svk.service_data.values[DID_SVK]
        run.steps[-1]["svk"] = svk
        return svk


def build_image(unit: Sgbm, size: int) -> bytes:
    """An ``EWU1`` unit image filling ``size`` bytes: the 64-byte header, then the payload."""
    if size <= IMAGE_HEADER_SIZE:
        raise Failure(f"region of {size} bytes cannot hold an image")
    pattern = hashlib.sha256(f"independent client {unit}".encode()).digest()
    payload_length = size - IMAGE_HEADER_SIZE
    payload = (pattern * (payload_length // len(pattern) + 1))[:payload_length]
    header = (
        IMAGE_MAGIC
        + unit.encode()  # class code, unit id, version main/sub/patch: bytes 4-11
        + payload_length.to_bytes(4, "big")
        + hashlib.sha256(payload).digest()
        + bytes(16)
    )
    assert len(header) == IMAGE_HEADER_SIZE
    return header + payload


def transfer(run: Run, ecu: Ecu, image: bytes, max_length: int) -> int:
    """TransferData blocks of ``max_length - 2`` bytes; returns the CRC-32 of the bytes sent."""
    block_size = max_length - 2  # maxNumberOfBlockLength counts the SID and the counter
    if block_size <= 0:
        raise Failure(f"RequestDownload granted maxNumberOfBlockLength {max_length}")
    answers: list[str] = []
    counter = 1
    crc = 0
    for offset in range(0, len(image), block_size):
        block = image[offset : offset + block_size]
        try:
            response = ecu.client.transfer_data(counter, block)
        except (NegativeResponseException, UnexpectedResponseException) as error:
            answer = error.response.original_payload
            run.record(
                "36 TransferData", ok=False, ecu=ecu.name, answer=_hex(answer), error=str(error)
            )
            raise Failure(
                f"TransferData block {counter:02X} at offset {offset}: {error}"
            ) from error
        except (TimeoutException, TimeoutError, OSError) as error:
            run.record("36 TransferData", ok=False, ecu=ecu.name, error=str(error))
            raise Failure(
                f"TransferData block {counter:02X} at offset {offset}: {error}"
            ) from error
        answers.append(response.original_payload.hex())
        crc = zlib.crc32(block, crc)
        counter = (counter + 1) & 0xFF  # 1..FF, then 00
    run.record(
        "36 TransferData",
        ok=True,
        ecu=ecu.name,
        blocks=len(answers),
        block_size=block_size,
        bytes=len(image),
        answers=answers,
    )
    return crc


def routine_status(response: Any) -> bytes:
    return bytes(response.service_data.routine_status_record or b"")


def flash(run: Run, port: int, target: Target) -> Sgbm:
    """Step 4: the programming sequence of DOMAIN.md on one ECU."""
    new_unit = target.unit.next_patch()
    image = build_image(new_unit, target.region_size)
    location = udsoncan.MemoryLocation(
        target.region_address, target.region_size, address_format=32, memorysize_format=32
    )
    record = bytes([ALFID_32_32]) + location.get_address_bytes() + location.get_memorysize_bytes()
    run.facts["flash"].update(unit_written=str(new_unit), image_bytes=len(image))

    with connect(run, port, target.address) as ecu:
        before = uds(
            run,
            ecu,
            "read 2502 programming counter",
            lambda c: c.read_data_by_identifier(DID_PROGRAMMING_COUNTER),
        )
        counter_before = before.service_data.values[DID_PROGRAMMING_COUNTER][0]
        run.check(
            counter_before == target.counter,
            "counter matches /state",
            f"DID 2502 says {counter_before}, /state {target.counter}",
            ecu=ecu.name,
        )
        uds(run, ecu, "10 03 extended session", lambda c: c.change_session(0x03))
        uds(run, ecu, "10 02 programming session", lambda c: c.change_session(0x02))
        seed = uds(run, ecu, "27 11 request seed", lambda c: c.request_seed(SECURITY_LEVEL))
        seed_bytes = bytes(seed.service_data.seed)
        key = hmac.new(target.secret, seed_bytes, hashlib.sha256).digest()[: len(seed_bytes)]
        uds(run, ecu, "27 12 send key", lambda c: c.send_key(SECURITY_LEVEL + 1, key))
        run.steps[-1]["key"] = key.hex()

        erase = uds(run, ecu, "31 01 FF00 erase", lambda c: c.start_routine(ROUTINE_ERASE, record))
        run.check(
            routine_status(erase) in {b"", b"\x00"}, "erase status", routine_status(erase).hex()
        )
        download = uds(run, ecu, "34 RequestDownload", lambda c: c.request_download(location))
        crc = transfer(run, ecu, image, download.service_data.max_length)
        uds(run, ecu, "37 RequestTransferExit", lambda c: c.request_transfer_exit())

        crc_bytes = crc.to_bytes(4, "big")
        check = uds(
            run,
            ecu,
            "31 01 0202 check memory",
            lambda c: c.start_routine(ROUTINE_CHECK_MEMORY, crc_bytes),
        )
        run.check(
            routine_status(check) == b"\x00",
            "check memory status",
            f"status {routine_status(check).hex()} (0x00 = correct)",
            crc32=crc_bytes.hex(),
        )
        deps = uds(
            run,
            ecu,
            "31 01 FF01 check dependencies",
            lambda c: c.start_routine(ROUTINE_CHECK_DEPENDENCIES),
        )
        run.check(
            routine_status(deps) == b"\x00",
            "dependency check status",
            f"status {routine_status(deps).hex()} (0x00 = consistent)",
        )
        uds(run, ecu, "11 01 hard reset", lambda c: c.ecu_reset(0x01))

        wait_for_boot(run, ecu)
        svk_response = uds(
            run, ecu, "read F101 SVK after reset", lambda c: c.read_data_by_identifier(DID_SVK)
        )
        svk = [Sgbm.parse(text) for text in svk_response.service_data.values[DID_SVK]]
        run.steps[-1]["svk"] = [str(unit) for unit in svk]
        run.check(new_unit in svk, "new unit installed", f"{new_unit} not in the SVK")
        run.check(target.unit not in svk, "old unit gone", f"{target.unit} still in the SVK")
        after = uds(
            run,
            ecu,
            "read 2502 programming counter after",
            lambda c: c.read_data_by_identifier(DID_PROGRAMMING_COUNTER),
        )
        counter_after = after.service_data.values[DID_PROGRAMMING_COUNTER][0]
        run.facts["programming_counter"] = {"before": counter_before, "after": counter_after}
        run.check(
            counter_after == counter_before + 1,
            "programming counter raised",
            f"{counter_before} -> {counter_after}, expected +1",
            before=counter_before,
            after=counter_after,
        )
    return new_unit


def wait_for_boot(run: Run, ecu: Ecu) -> None:
    """After 11 01 the ECU is silent for its boot time: poll with 3E 00, a bounded number of times.

    Each poll waits up to RESET_POLL_TIMEOUT for the answer; that wait paces the polls.
    """
    name = "3E 00 tester present (after reset)"
    failures: list[str] = []
    ecu.client.set_config("p2_timeout", RESET_POLL_TIMEOUT)
    try:
        for poll in range(1, RESET_POLLS + 1):
            try:
                uds(run, ecu, name, lambda c: c.tester_present())
            except Failure as failure:
                run.steps.pop()  # an ECU still booting is expected: only the last poll counts
                failures.append(str(failure))
                if "no answer" not in str(failure):
                    time.sleep(0.1)  # refused at once (a DoIP NACK, an NRC): do not spin
                continue
            run.steps[-1]["polls"] = poll
            return
    finally:
        ecu.client.set_config("p2_timeout", client_config()["p2_timeout"])
    run.record(name, ok=False, ecu=ecu.name, polls=RESET_POLLS, error=failures[-1])
    raise Failure(f"ECU {ecu.name} did not answer {RESET_POLLS} polls after the reset")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doip-port", type=int, required=True, help="DoIP TCP+UDP port")
    parser.add_argument("--control-port", type=int, required=True, help="control API port")
    parser.add_argument("--ecu", type=lambda text: int(text, 0), default=0x12, help="ECU to flash")
    parser.add_argument("--verbose", action="store_true", help="log doipclient and udsoncan")
    parser.add_argument(
        "--svk-ecus",
        default=DEFAULT_SVK_ECUS,
        help="ECUs whose VIN and SVK are read (comma-separated)",
    )
    args = parser.parse_args(argv)
    # udsoncan logs every expected silence of a booting ECU as an error: quiet unless asked.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.CRITICAL,
        stream=sys.stderr,
        format="%(name)s %(levelname)s %(message)s",
    )
    svk_ecus = [int(text, 0) for text in args.svk_ecus.split(",") if text.strip()]

    run = Run()
    error = None
    try:
        announcement = identify(run, args.doip_port)
        state = get_state(run, args.control_port, "GET /state")
        vin = state.get("vin")
        run.facts["vin"] = vin
        run.check(
            announcement["vin"] == vin,
            "announced VIN matches /state",
            f"{announcement['vin']!r} != {vin!r}",
        )
        target = flash_target(run, state, args.ecu)

        run.facts["svk"] = {}
        for address in svk_ecus:
            svk = read_identity(run, args.doip_port, address, vin)
            expected = ecu_state(state, address).get("svk")
            run.check(
                svk == expected,
                "SVK matches /state",
                f"{svk} != {expected}",
                ecu=f"0x{address:02X}",
            )
            run.facts["svk"][f"0x{address:02X}"] = svk

        new_unit = flash(run, args.doip_port, target)

        after = ecu_state(get_state(run, args.control_port, "GET /state after"), args.ecu)
        run.check(
            after.get("mode") == "application", "mode application", f"mode is {after.get('mode')!r}"
        )
        run.check(
            after.get("programming_counter") == target.counter + 1,
            "/state counter raised",
            f"{target.counter} -> {after.get('programming_counter')}",
        )
        run.check(
            str(new_unit) in after.get("svk", []),
            "/state SVK",
            f"{new_unit} not in {after.get('svk')}",
        )
        run.facts["programming_counter"]["state_after"] = after.get("programming_counter")
    except Failure as failure:
        error = str(failure)

    summary = run.summary(error)
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if not summary["ok"]:
        print(f"independent client: FAILED: {error or 'a step was not positive'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
