"""The ECU server's data services: DIDs (0x22, 0x2E) and fault memory (0x14, 0x19).

Which DIDs an ECU has:

* every ECU, also in its bootloader: F190 VIN, F101 SVK, F186 active session, 2502
  programming counter and 2503 its maximum (2 bytes each, big-endian); the central
  gateway's F1A2 battery voltage too;
* in the application only: its coding DIDs and individual data DIDs (from its profile),
  and on the central gateway F1A0 the I-level triple (42 bytes,
  :class:`~ecuworks.wire.ilevel.ILevelTriple`), F1A1 the vehicle order (ASCII,
  :class:`~ecuworks.wire.vo.VehicleOrder`); 37FE the CAFDs the ECU is coded with (SVK
  encoding) on every ECU that has coding; on every ECU 1041 the accepted enabling codes
  (FSC records, 93 bytes each, back to back; empty if none) and 1042 the status of each
  application written or installed (:func:`ecuworks.wire.fsc.encode_status`).

Writes (0x2E): coding DIDs in the coding session (0x41) only; individual data in the
extended (0x03) or coding session; the gateway's F1A0 and F1A1 in a non-default session
with a security level unlocked; 37FE in the coding session, which puts the CAFDs into the
SVK (coding is what installs a CAFD: it is never flashed). A record must keep its DID's
length; F1A0 and F1A1 must decode. A DID that cannot be written in the active session is
NRC 0x31 requestOutOfRange (ISO 14229-1 WriteDataByIdentifier: a DID not supported in the
active session).

An enabling code (2E 1041, one record) is written where individual data is: in the
extended or coding session. A record that does not decode is NRC 0x13; any other is
answered positively and judged (:func:`ecuworks.sim.fsc.judge`): accepted and stored,
rejected (another VIN) or invalid (signature); DID 1042 tells which.
"""

from __future__ import annotations

from collections.abc import Callable

from ecuworks.errors import ParseError
from ecuworks.sim.ecu_base import Refusal
from ecuworks.sim.fsc import judge
from ecuworks.sim.state import EcuState, VehicleState
from ecuworks.wire.fsc import FscStatusEntry, encode_status
from ecuworks.wire.ilevel import ILevel, ILevelTriple
from ecuworks.wire.sgbm import ProcessClass, SgbmId, encode_svk, parse_svk
from ecuworks.wire.uds import Did, Nrc, Session
from ecuworks.wire.vo import VehicleOrder

__all__ = [
    "clear_dtcs",
    "read_data",
    "read_dtcs",
    "write_data",
]


# ReadDTCInformation reportDTCByStatusMask (ISO 14229-1, 0x19 sub-function 0x02).
_REPORT_BY_STATUS_MASK = 0x02
# DTCStatusAvailabilityMask: the ECU supports every status bit.
_STATUS_AVAILABILITY = 0xFF
_ALL_GROUPS = 0xFFFFFF
# Three 14-byte I-level fields (ecuworks.wire.ilevel).
_ILEVEL_RECORD_LENGTH = 42
_CODING_SESSIONS = frozenset({Session.CODING})
_INDIVIDUAL_SESSIONS = frozenset({Session.EXTENDED, Session.CODING})
_GATEWAY_SESSIONS = frozenset({Session.PROGRAMMING, Session.EXTENDED, Session.CODING})


def _u16(value: int) -> bytes:
    """Return ``value`` as 2 bytes big-endian, clamped to 0-0xFFFF."""
    return min(max(value, 0), 0xFFFF).to_bytes(2, "big")


def _read_one(ecu: EcuState, vehicle: VehicleState, did: int) -> bytes | None:
    """Return one DID's record, or None when this ECU does not have it now."""
    readers: dict[int, Callable[[], bytes]] = {
        Did.VIN: lambda: vehicle.vin.encode("ascii"),
        Did.SVK: lambda: encode_svk(ecu.svk_ids()),
        Did.ACTIVE_SESSION: lambda: bytes((ecu.session,)),
        Did.PROGRAMMING_COUNTER: lambda: _u16(ecu.programming_counter),
        Did.PROGRAMMING_COUNTER_MAX: lambda: _u16(ecu.programming_counter_max),
    }
    if ecu.address == vehicle.gateway_address:
        # The gateway measures its supply in the bootloader too: a tester recovering it
        # still needs the voltage to decide whether flashing is safe.
        readers[Did.BATTERY_MV] = lambda: _u16(round(vehicle.battery.supply_volts * 1000))
    if ecu.mode == "application":
        if ecu.address == vehicle.gateway_address:
            readers[Did.ILEVEL] = lambda: _ilevel_record(vehicle)
            readers[Did.VEHICLE_ORDER] = lambda: VehicleOrder.parse(vehicle.vo).encode()
        for store in (ecu.coding, ecu.individual_data):
            if did in store:
                return store[did]
        if ecu.coding:
            readers[Did.CODING_CAFD] = lambda: encode_svk(SgbmId.parse(c) for c in ecu.cafd)
        readers[Did.FSC_RECORDS] = lambda: b"".join(
            ecu.fsc_records[app] for app in sorted(ecu.fsc_records)
        )
        readers[Did.FSC_STATUS] = lambda: _fsc_status_record(ecu)
    reader = readers.get(did)
    return None if reader is None else reader()


def _fsc_status_record(ecu: EcuState) -> bytes:
    """Return DID 1042: each application's upgrade index and status, by application id."""
    return encode_status(
        FscStatusEntry(app_id=app, upgrade_index=index, status=status)
        for app, (index, status) in sorted(ecu.fsc_status.items())
    )


def _ilevel_record(vehicle: VehicleState) -> bytes:
    """Return the gateway's I-level triple record (42 bytes)."""
    return ILevelTriple(
        current=ILevel.parse(vehicle.ilevel_current),
        last=ILevel.parse(vehicle.ilevel_last),
        shipment=ILevel.parse(vehicle.ilevel_shipment),
    ).encode()


def read_data(ecu: EcuState, vehicle: VehicleState, request: bytes) -> bytes:
    """Answer ReadDataByIdentifier ``22 DID [DID ...]`` with ``62 DID record ...``.

    DIDs the ECU does not have are left out of the answer; if it has none of them the
    answer is NRC 0x31 (ISO 14229-1 ReadDataByIdentifier).

    Raises:
        Refusal: 0x13 for a length that is not 1 + 2n, 0x31 when no DID is supported.
    """
    body = request[1:]
    if not body or len(body) % 2:
        raise Refusal(Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT)
    answer = bytearray((0x62,))
    for i in range(0, len(body), 2):
        did = int.from_bytes(body[i : i + 2], "big")
        record = _read_one(ecu, vehicle, did)
        if record is not None:
            answer += body[i : i + 2] + record
    if len(answer) == 1:
        raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, "no requested DID is supported")
    return bytes(answer)


def write_data(ecu: EcuState, vehicle: VehicleState, request: bytes, *, unlocked: bool) -> bytes:
    """Answer WriteDataByIdentifier ``2E DID record`` with ``6E DID``.

    Args:
        ecu: the ECU written to.
        vehicle: the vehicle (the gateway's DIDs live there).
        request: the whole request.
        unlocked: whether any security level is unlocked.

    Raises:
        Refusal: 0x13 wrong length, 0x31 DID unknown or not writable in this session or a
            record that does not decode, 0x33 security locked.
    """
    if len(request) < 4:
        raise Refusal(Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT)
    did = int.from_bytes(request[1:3], "big")
    record = request[3:]
    gateway = ecu.address == vehicle.gateway_address
    if gateway and did in (Did.ILEVEL, Did.VEHICLE_ORDER):
        if ecu.session not in _GATEWAY_SESSIONS:
            raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, "not writable in this session")
        if not unlocked:
            raise Refusal(Nrc.SECURITY_ACCESS_DENIED)
        _write_gateway(vehicle, did, record)
    elif did == Did.CODING_CAFD and ecu.coding:
        _write_cafd(ecu, record)
    elif did == Did.FSC_RECORDS:
        _write_fsc(ecu, vehicle, record)
    elif did in ecu.coding or did in ecu.individual_data:
        store = ecu.coding if did in ecu.coding else ecu.individual_data
        sessions = _CODING_SESSIONS if store is ecu.coding else _INDIVIDUAL_SESSIONS
        if ecu.session not in sessions:
            raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, "not writable in this session")
        if len(record) != len(store[did]):
            raise Refusal(Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT)
        store[did] = bytes(record)
    else:
        raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, f"DID 0x{did:04X} is not writable")
    return bytes((0x6E,)) + request[1:3]


def _write_cafd(ecu: EcuState, record: bytes) -> None:
    """Put the CAFDs of DID 37FE into the SVK (coding session only)."""
    if ecu.session not in _CODING_SESSIONS:
        raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, "not writable in this session")
    try:
        units = parse_svk(record)
    except ParseError as exc:
        raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, str(exc)) from exc
    if not units or any(u.process_class != ProcessClass.CAFD for u in units):
        raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, "37FE takes CAFD SGBM-IDs only")
    ecu.cafd = [str(u) for u in units]


def _write_fsc(ecu: EcuState, vehicle: VehicleState, record: bytes) -> None:
    """Judge an enabling code and keep the verdict; store the code if accepted."""
    if ecu.session not in _INDIVIDUAL_SESSIONS:
        raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, "not writable in this session")
    try:
        code, status = judge(record, public_key=vehicle.fsc_public_key, vin=vehicle.vin)
    except ParseError as exc:
        raise Refusal(Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT, str(exc)) from exc
    ecu.take_fsc(code, status)


def _write_gateway(vehicle: VehicleState, did: int, record: bytes) -> None:
    """Store the I-level triple or the vehicle order in the vehicle."""
    if did == Did.ILEVEL:
        if len(record) != _ILEVEL_RECORD_LENGTH:
            raise Refusal(Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT)
        try:
            triple = ILevelTriple.decode(record)
        except ParseError as exc:
            raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, str(exc)) from exc
        vehicle.ilevel_current = str(triple.current)
        vehicle.ilevel_last = str(triple.last)
        vehicle.ilevel_shipment = str(triple.shipment)
        return
    try:
        order = VehicleOrder.decode(record)
    except ParseError as exc:
        raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, str(exc)) from exc
    vehicle.vo = str(order)


def clear_dtcs(ecu: EcuState, request: bytes) -> bytes:
    """Answer ClearDiagnosticInformation ``14 groupOfDTC`` with ``54``.

    ``FF FF FF`` clears every DTC; a stored DTC's code clears that one.

    Raises:
        Refusal: 0x13 when the group is not 3 bytes, 0x31 for a group the ECU does not have.
    """
    if len(request) != 4:
        raise Refusal(Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT)
    group = int.from_bytes(request[1:4], "big")
    if group == _ALL_GROUPS:
        ecu.dtcs.clear()
    elif any(code == group for code, _ in ecu.dtcs):
        ecu.dtcs[:] = [(code, status) for code, status in ecu.dtcs if code != group]
    else:
        raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, f"no DTC group 0x{group:06X}")
    return b"\x54"


def read_dtcs(ecu: EcuState, request: bytes) -> bytes:
    """Answer ReadDTCInformation ``19 02 mask`` with ``59 02 FF (DTC status)*``.

    Only reportDTCByStatusMask is supported. Its report type has no
    suppressPosRspMsgIndicationBit: a report is always sent.

    Raises:
        Refusal: 0x13 for a wrong length, 0x12 for another report type.
    """
    if len(request) < 2:
        raise Refusal(Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT)
    if request[1] != _REPORT_BY_STATUS_MASK:
        raise Refusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED)
    if len(request) != 3:
        raise Refusal(Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT)
    mask = request[2]
    answer = bytearray((0x59, _REPORT_BY_STATUS_MASK, _STATUS_AVAILABILITY))
    for code, status in ecu.dtcs:
        if status & mask:
            answer += code.to_bytes(3, "big") + bytes((status,))
    return bytes(answer)
