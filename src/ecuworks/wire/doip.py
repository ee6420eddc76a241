"""DoIP (ISO 13400-2) messages: the generic header and every payload type a tester meets.

Sans-I/O: :func:`parse` turns one whole frame into a message, :class:`DoipDecoder` frames a
TCP byte stream, and every message's ``encode()`` gives the whole frame. Clause numbers
refer to ISO 13400-2:2019; the 2012 edition (protocol version 0x02) has the same layouts.

Generic header (clause 7.1.2)::

    version (1) | inverse version (1) | payload type (2, BE) | payload length (4, BE)

The diagnostic message (0x8001) is the hot path of flashing; :func:`encode_diagnostic` and
the decoder keep its cost to one header pack and one copy of the user data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from ecuworks.errors import ConfigError, DoipHeaderError, ParseError

__all__ = [
    "DEFAULT_VERSION",
    "FUNCTIONAL_ADDRESS",
    "HEADER_SIZE",
    "TCP_PORT",
    "TESTER_ADDRESS",
    "TLS_PORT",
    "UDP_PORT",
    "ActivationType",
    "AliveCheckRequest",
    "AliveCheckResponse",
    "DiagnosticMessage",
    "DiagnosticMessageAck",
    "DiagnosticMessageNack",
    "DiagnosticNackCode",
    "DoipDecoder",
    "DoipMessage",
    "EntityStatusRequest",
    "EntityStatusResponse",
    "GenericNack",
    "HeaderNackCode",
    "NodeType",
    "PayloadType",
    "PowerMode",
    "PowerModeRequest",
    "PowerModeResponse",
    "RoutingActivationCode",
    "RoutingActivationRequest",
    "RoutingActivationResponse",
    "UnknownPayload",
    "VehicleAnnouncement",
    "VehicleIdentificationRequest",
    "VehicleIdentificationRequestEid",
    "VehicleIdentificationRequestVin",
    "encode_diagnostic",
    "parse",
]

TCP_PORT: Final = 13400  # UDP_DISCOVERY and TCP_DATA (clause 9.2)
UDP_PORT: Final = 13400
TLS_PORT: Final = 3496  # TCP_DATA over TLS (2019 edition)
TESTER_ADDRESS: Final = 0x0EF3  # external test equipment, 0x0E00-0x0FFF (table 13)
# Vehicle-manufacturer functional address range starts at 0xE400 (table 13); this world's
# gateways fan a request to this address out to every ECU.
FUNCTIONAL_ADDRESS: Final = 0xE400

# 0x02 = ISO 13400-2:2012, 0x03 = 2019; 0x01 is the 2010 DIS. 0xFF is only allowed as the
# "default" version of vehicle identification requests (clause 7.1.2, table 16).
DEFAULT_VERSION: Final = 0x02
_KNOWN_VERSIONS: Final = frozenset({0x01, 0x02, 0x03, 0x04})
_ANY_VERSION: Final = 0xFF

HEADER: Final = struct.Struct(">BBHI")
HEADER_SIZE: Final = HEADER.size
_DIAG_HEADER: Final = struct.Struct(">BBHIHH")  # generic header + source + target
_ADDRESSES: Final = struct.Struct(">HH")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")

DEFAULT_MAX_PAYLOAD: Final = 16 * 1024 * 1024 + 4  # a 16 MiB UDS message plus addresses


class PayloadType(IntEnum):
    """Payload types (clause 7.1.2, table 17)."""

    GENERIC_NACK = 0x0000
    VEHICLE_IDENTIFICATION_REQUEST = 0x0001
    VEHICLE_IDENTIFICATION_REQUEST_EID = 0x0002
    VEHICLE_IDENTIFICATION_REQUEST_VIN = 0x0003
    VEHICLE_ANNOUNCEMENT = 0x0004  # also the vehicle identification response
    ROUTING_ACTIVATION_REQUEST = 0x0005
    ROUTING_ACTIVATION_RESPONSE = 0x0006
    ALIVE_CHECK_REQUEST = 0x0007
    ALIVE_CHECK_RESPONSE = 0x0008
    ENTITY_STATUS_REQUEST = 0x4001
    ENTITY_STATUS_RESPONSE = 0x4002
    POWER_MODE_REQUEST = 0x4003
    POWER_MODE_RESPONSE = 0x4004
    DIAGNOSTIC_MESSAGE = 0x8001
    DIAGNOSTIC_MESSAGE_ACK = 0x8002
    DIAGNOSTIC_MESSAGE_NACK = 0x8003


class HeaderNackCode(IntEnum):
    """Generic header negative acknowledge codes (clause 7.1.2, table 18)."""

    INCORRECT_PATTERN = 0x00  # close the socket
    UNKNOWN_PAYLOAD_TYPE = 0x01  # discard the message
    MESSAGE_TOO_LARGE = 0x02
    OUT_OF_MEMORY = 0x03
    INVALID_PAYLOAD_LENGTH = 0x04  # close the socket


class ActivationType(IntEnum):
    """Routing activation types (clause 7.5, table 47)."""

    DEFAULT = 0x00
    WWH_OBD = 0x01
    CENTRAL_SECURITY = 0xE0


class RoutingActivationCode(IntEnum):
    """Routing activation response codes (clause 7.5, table 48)."""

    DENIED_UNKNOWN_SOURCE_ADDRESS = 0x00
    DENIED_ALL_SOCKETS_ACTIVE = 0x01
    DENIED_SOURCE_ADDRESS_MISMATCH = 0x02  # differs from the one activated on this socket
    DENIED_SOURCE_ADDRESS_IN_USE = 0x03  # already active on another socket
    DENIED_MISSING_AUTHENTICATION = 0x04
    DENIED_REJECTED_CONFIRMATION = 0x05
    DENIED_UNSUPPORTED_ACTIVATION_TYPE = 0x06
    DENIED_TLS_REQUIRED = 0x07  # 2019 edition
    SUCCESS = 0x10
    CONFIRMATION_REQUIRED = 0x11  # will be activated once confirmed in the vehicle

    @property
    def activated(self) -> bool:
        """Whether diagnostic messages may now be sent on this socket."""
        return self is RoutingActivationCode.SUCCESS

    @property
    def description(self) -> str:
        """A sentence a technician can act on."""
        return _ROUTING_DESCRIPTIONS[self]


_ROUTING_DESCRIPTIONS: Final = {
    RoutingActivationCode.DENIED_UNKNOWN_SOURCE_ADDRESS: (
        "the gateway does not know this tester address; check the tester address setting"
    ),
    RoutingActivationCode.DENIED_ALL_SOCKETS_ACTIVE: (
        "every diagnostic connection of the gateway is in use; close the other tester"
    ),
    RoutingActivationCode.DENIED_SOURCE_ADDRESS_MISMATCH: (
        "this connection was activated with another tester address"
    ),
    RoutingActivationCode.DENIED_SOURCE_ADDRESS_IN_USE: (
        "another connection already uses this tester address; close the other tester"
    ),
    RoutingActivationCode.DENIED_MISSING_AUTHENTICATION: "the gateway requires authentication",
    RoutingActivationCode.DENIED_REJECTED_CONFIRMATION: "activation was rejected in the vehicle",
    RoutingActivationCode.DENIED_UNSUPPORTED_ACTIVATION_TYPE: (
        "the gateway does not support this activation type"
    ),
    RoutingActivationCode.DENIED_TLS_REQUIRED: "the gateway requires TLS (port 3496)",
    RoutingActivationCode.SUCCESS: "routing activated",
    RoutingActivationCode.CONFIRMATION_REQUIRED: "activation waits for confirmation in the vehicle",
}


class DiagnosticNackCode(IntEnum):
    """Diagnostic message negative acknowledge codes (clause 7.8, table 59)."""

    INVALID_SOURCE_ADDRESS = 0x02
    UNKNOWN_TARGET_ADDRESS = 0x03
    MESSAGE_TOO_LARGE = 0x04
    OUT_OF_MEMORY = 0x05
    TARGET_UNREACHABLE = 0x06
    UNKNOWN_NETWORK = 0x07
    TRANSPORT_PROTOCOL_ERROR = 0x08


class NodeType(IntEnum):
    """Entity status node types (clause 7.6, table 51)."""

    GATEWAY = 0x00
    NODE = 0x01


class PowerMode(IntEnum):
    """Diagnostic power mode (clause 7.7, table 55)."""

    NOT_READY = 0x00
    READY = 0x01
    NOT_SUPPORTED = 0x02


def _check_u16(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ConfigError(f"{name} 0x{value:X} does not fit the 2 bytes DoIP gives it")


def _frame(version: int, payload_type: int, payload: bytes) -> bytes:
    return HEADER.pack(version, version ^ 0xFF, payload_type, len(payload)) + payload


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack:
    """Generic DoIP header negative acknowledge (0x0000)."""

    code: int
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        return _frame(self.version, PayloadType.GENERIC_NACK, bytes([self.code]))


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleIdentificationRequest:
    """Vehicle identification request without filter (0x0001)."""

    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        return _frame(self.version, PayloadType.VEHICLE_IDENTIFICATION_REQUEST, b"")


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleIdentificationRequestEid:
    """Vehicle identification request for one entity id, a MAC address (0x0002)."""

    eid: bytes
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        if len(self.eid) != 6:
            raise ConfigError("an EID is 6 bytes (the entity's MAC address)")
        return _frame(self.version, PayloadType.VEHICLE_IDENTIFICATION_REQUEST_EID, self.eid)


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleIdentificationRequestVin:
    """Vehicle identification request for one VIN (0x0003)."""

    vin: str
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        data = self.vin.encode("ascii", "replace")
        if len(data) != 17:
            raise ConfigError(f"a VIN is 17 characters, not {len(data)}: {self.vin!r}")
        return _frame(self.version, PayloadType.VEHICLE_IDENTIFICATION_REQUEST_VIN, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleAnnouncement:
    """Vehicle announcement or vehicle identification response (0x0004, clause 7.4).

    ``further_action`` 0x10 asks for routing activation for central security;
    ``sync_status`` (optional byte) 0x00 VIN/GID synchronised, 0x10 incomplete.
    """

    vin: str
    logical_address: int
    eid: bytes
    gid: bytes
    further_action: int = 0x00
    sync_status: int | None = None
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        vin = self.vin.encode("ascii", "replace")
        if len(vin) != 17 or len(self.eid) != 6 or len(self.gid) != 6:
            raise ConfigError("an announcement needs a 17-char VIN and 6-byte EID and GID")
        _check_u16("logical address", self.logical_address)
        data = vin + _U16.pack(self.logical_address) + self.eid + self.gid
        data += bytes([self.further_action])
        if self.sync_status is not None:
            data += bytes([self.sync_status])
        return _frame(self.version, PayloadType.VEHICLE_ANNOUNCEMENT, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingActivationRequest:
    """Routing activation request (0x0005, clause 7.5)."""

    source_address: int
    activation_type: int = ActivationType.DEFAULT
    oem: bytes | None = None  # optional 4 OEM-specific bytes
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        _check_u16("source address", self.source_address)
        data = _U16.pack(self.source_address) + bytes([self.activation_type]) + bytes(4)
        if self.oem is not None:
            if len(self.oem) != 4:
                raise ConfigError("the OEM-specific field of routing activation is 4 bytes")
            data += self.oem
        return _frame(self.version, PayloadType.ROUTING_ACTIVATION_REQUEST, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingActivationResponse:
    """Routing activation response (0x0006, clause 7.5)."""

    tester_address: int
    entity_address: int
    code: int
    oem: bytes | None = None
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        _check_u16("tester address", self.tester_address)
        _check_u16("entity address", self.entity_address)
        data = _ADDRESSES.pack(self.tester_address, self.entity_address)
        data += bytes([self.code]) + bytes(4)
        if self.oem is not None:
            if len(self.oem) != 4:
                raise ConfigError("the OEM-specific field of routing activation is 4 bytes")
            data += self.oem
        return _frame(self.version, PayloadType.ROUTING_ACTIVATION_RESPONSE, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class AliveCheckRequest:
    """Alive check request, sent by the entity to a tester socket (0x0007)."""

    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        return _frame(self.version, PayloadType.ALIVE_CHECK_REQUEST, b"")


@dataclass(frozen=True, slots=True, kw_only=True)
class AliveCheckResponse:
    """Alive check response with the tester's address (0x0008)."""

    source_address: int
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        _check_u16("source address", self.source_address)
        data = _U16.pack(self.source_address)
        return _frame(self.version, PayloadType.ALIVE_CHECK_RESPONSE, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityStatusRequest:
    """DoIP entity status request (0x4001)."""

    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        return _frame(self.version, PayloadType.ENTITY_STATUS_REQUEST, b"")


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityStatusResponse:
    """DoIP entity status response (0x4002, clause 7.6)."""

    node_type: int
    max_sockets: int
    open_sockets: int
    max_data_size: int | None = None
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        data = bytes([self.node_type, self.max_sockets, self.open_sockets])
        if self.max_data_size is not None:
            data += _U32.pack(self.max_data_size)
        return _frame(self.version, PayloadType.ENTITY_STATUS_RESPONSE, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerModeRequest:
    """Diagnostic power mode information request (0x4003)."""

    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        return _frame(self.version, PayloadType.POWER_MODE_REQUEST, b"")


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerModeResponse:
    """Diagnostic power mode information response (0x4004)."""

    mode: int
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        return _frame(self.version, PayloadType.POWER_MODE_RESPONSE, bytes([self.mode]))


def encode_diagnostic(
    source: int, target: int, data: bytes, version: int = DEFAULT_VERSION
) -> bytes:
    """Encode a diagnostic message frame: one pack and one copy of ``data``."""
    return _DIAG_HEADER.pack(version, version ^ 0xFF, 0x8001, len(data) + 4, source, target) + data


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagnosticMessage:
    """Diagnostic message carrying one UDS PDU (0x8001, clause 7.8)."""

    source: int
    target: int
    data: bytes
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        _check_u16("source address", self.source)
        _check_u16("target address", self.target)
        if not self.data:
            raise ConfigError("a diagnostic message carries at least one byte of UDS data")
        return encode_diagnostic(self.source, self.target, self.data, self.version)


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagnosticMessageAck:
    """Diagnostic message positive acknowledge (0x8002); ``previous`` echoes the request."""

    source: int
    target: int
    code: int = 0x00
    previous: bytes = b""
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        data = _ADDRESSES.pack(self.source, self.target) + bytes([self.code]) + self.previous
        return _frame(self.version, PayloadType.DIAGNOSTIC_MESSAGE_ACK, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagnosticMessageNack:
    """Diagnostic message negative acknowledge (0x8003); ``code`` is a DiagnosticNackCode."""

    source: int
    target: int
    code: int
    previous: bytes = b""
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        data = _ADDRESSES.pack(self.source, self.target) + bytes([self.code]) + self.previous
        return _frame(self.version, PayloadType.DIAGNOSTIC_MESSAGE_NACK, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownPayload:
    """A well-framed message of a payload type this codec does not know.

    ISO 13400-2 answers it with header NACK 0x01 and keeps the socket open, so the decoder
    hands it over instead of failing the stream.
    """

    payload_type: int
    payload: bytes
    version: int = DEFAULT_VERSION

    def encode(self) -> bytes:
        """The whole frame."""
        return _frame(self.version, self.payload_type, self.payload)


DoipMessage = (
    GenericNack
    | VehicleIdentificationRequest
    | VehicleIdentificationRequestEid
    | VehicleIdentificationRequestVin
    | VehicleAnnouncement
    | RoutingActivationRequest
    | RoutingActivationResponse
    | AliveCheckRequest
    | AliveCheckResponse
    | EntityStatusRequest
    | EntityStatusResponse
    | PowerModeRequest
    | PowerModeResponse
    | DiagnosticMessage
    | DiagnosticMessageAck
    | DiagnosticMessageNack
    | UnknownPayload
)

# Allowed payload lengths per type: (minimum, maximum or None for "no fixed maximum",
# extra allowed exact lengths). A length outside is header NACK 0x04 (clause 7.1.2).
_LENGTHS: Final[dict[int, tuple[int, int | None]]] = {
    PayloadType.GENERIC_NACK: (1, 1),
    PayloadType.VEHICLE_IDENTIFICATION_REQUEST: (0, 0),
    PayloadType.VEHICLE_IDENTIFICATION_REQUEST_EID: (6, 6),
    PayloadType.VEHICLE_IDENTIFICATION_REQUEST_VIN: (17, 17),
    PayloadType.VEHICLE_ANNOUNCEMENT: (32, 33),
    PayloadType.ROUTING_ACTIVATION_REQUEST: (7, 11),
    PayloadType.ROUTING_ACTIVATION_RESPONSE: (9, 13),
    PayloadType.ALIVE_CHECK_REQUEST: (0, 0),
    PayloadType.ALIVE_CHECK_RESPONSE: (2, 2),
    PayloadType.ENTITY_STATUS_REQUEST: (0, 0),
    PayloadType.ENTITY_STATUS_RESPONSE: (3, 7),
    PayloadType.POWER_MODE_REQUEST: (0, 0),
    PayloadType.POWER_MODE_RESPONSE: (1, 1),
    PayloadType.DIAGNOSTIC_MESSAGE: (5, None),
    PayloadType.DIAGNOSTIC_MESSAGE_ACK: (5, None),
    PayloadType.DIAGNOSTIC_MESSAGE_NACK: (5, None),
}
# Lengths inside (min, max) that are still wrong: optional fields come whole or not at all.
_GAPS: Final[dict[int, frozenset[int]]] = {
    PayloadType.ROUTING_ACTIVATION_REQUEST: frozenset({8, 9, 10}),
    PayloadType.ROUTING_ACTIVATION_RESPONSE: frozenset({10, 11, 12}),
    PayloadType.ENTITY_STATUS_RESPONSE: frozenset({4, 5, 6}),
}
_IDENTIFICATION_REQUESTS: Final = frozenset({0x0001, 0x0002, 0x0003})


def _check_header(version: int, inverse: int, payload_type: int, length: int) -> None:
    """Apply the generic header checks of clause 7.1.2 in the order the standard gives."""
    if inverse != version ^ 0xFF or not (
        version in _KNOWN_VERSIONS
        or (version == _ANY_VERSION and payload_type in _IDENTIFICATION_REQUESTS)
    ):
        raise DoipHeaderError(
            f"not a DoIP header: version 0x{version:02X}, inverse 0x{inverse:02X}",
            code=HeaderNackCode.INCORRECT_PATTERN,
        )
    bounds = _LENGTHS.get(payload_type)
    if bounds is None:
        return  # unknown payload type: framed fine, the caller decides (UnknownPayload)
    low, high = bounds
    if (
        length < low
        or (high is not None and length > high)
        or length in _GAPS.get(payload_type, ())
    ):
        raise DoipHeaderError(
            f"DoIP payload type 0x{payload_type:04X} cannot be {length} bytes long",
            code=HeaderNackCode.INVALID_PAYLOAD_LENGTH,
        )


def _ascii(data: bytes, what: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ParseError(f"{what} is not ASCII: {data.hex()}") from None


def _decode_payload(version: int, payload_type: int, p: bytes) -> DoipMessage:  # noqa: PLR0911, PLR0912
    """Decode a payload whose length already passed :func:`_check_header`."""
    if payload_type == PayloadType.DIAGNOSTIC_MESSAGE:
        source, target = _ADDRESSES.unpack_from(p)
        return DiagnosticMessage(source=source, target=target, data=p[4:], version=version)
    if payload_type in (PayloadType.DIAGNOSTIC_MESSAGE_ACK, PayloadType.DIAGNOSTIC_MESSAGE_NACK):
        source, target = _ADDRESSES.unpack_from(p)
        cls = (
            DiagnosticMessageAck
            if payload_type == PayloadType.DIAGNOSTIC_MESSAGE_ACK
            else DiagnosticMessageNack
        )
        return cls(source=source, target=target, code=p[4], previous=p[5:], version=version)
    if payload_type == PayloadType.GENERIC_NACK:
        return GenericNack(code=p[0], version=version)
    if payload_type == PayloadType.VEHICLE_IDENTIFICATION_REQUEST:
        return VehicleIdentificationRequest(version=version)
    if payload_type == PayloadType.VEHICLE_IDENTIFICATION_REQUEST_EID:
        return VehicleIdentificationRequestEid(eid=p, version=version)
    if payload_type == PayloadType.VEHICLE_IDENTIFICATION_REQUEST_VIN:
        return VehicleIdentificationRequestVin(vin=_ascii(p, "VIN"), version=version)
    if payload_type == PayloadType.VEHICLE_ANNOUNCEMENT:
        return VehicleAnnouncement(
            vin=_ascii(p[:17], "VIN"),
            logical_address=_U16.unpack_from(p, 17)[0],
            eid=p[19:25],
            gid=p[25:31],
            further_action=p[31],
            sync_status=p[32] if len(p) == 33 else None,
            version=version,
        )
    if payload_type == PayloadType.ROUTING_ACTIVATION_REQUEST:
        return RoutingActivationRequest(
            source_address=_U16.unpack_from(p)[0],
            activation_type=p[2],
            oem=p[7:11] if len(p) == 11 else None,
            version=version,
        )
    if payload_type == PayloadType.ROUTING_ACTIVATION_RESPONSE:
        tester, entity = _ADDRESSES.unpack_from(p)
        return RoutingActivationResponse(
            tester_address=tester,
            entity_address=entity,
            code=p[4],
            oem=p[9:13] if len(p) == 13 else None,
            version=version,
        )
    if payload_type == PayloadType.ALIVE_CHECK_REQUEST:
        return AliveCheckRequest(version=version)
    if payload_type == PayloadType.ALIVE_CHECK_RESPONSE:
        return AliveCheckResponse(source_address=_U16.unpack_from(p)[0], version=version)
    if payload_type == PayloadType.ENTITY_STATUS_REQUEST:
        return EntityStatusRequest(version=version)
    if payload_type == PayloadType.ENTITY_STATUS_RESPONSE:
        return EntityStatusResponse(
            node_type=p[0],
            max_sockets=p[1],
            open_sockets=p[2],
            max_data_size=_U32.unpack_from(p, 3)[0] if len(p) == 7 else None,
            version=version,
        )
    if payload_type == PayloadType.POWER_MODE_REQUEST:
        return PowerModeRequest(version=version)
    if payload_type == PayloadType.POWER_MODE_RESPONSE:
        return PowerModeResponse(mode=p[0], version=version)
    return UnknownPayload(payload_type=payload_type, payload=p, version=version)


def parse(frame: bytes | bytearray | memoryview) -> DoipMessage:
    """Decode exactly one whole DoIP frame.

    Raises:
        DoipHeaderError: the header is malformed or the length does not fit the type.
        ParseError: the frame is truncated, has trailing bytes or a field is not ASCII.
    """
    if len(frame) < HEADER_SIZE:
        raise ParseError(f"a DoIP frame has an 8-byte header; got {len(frame)} bytes")
    version, inverse, payload_type, length = HEADER.unpack_from(frame)
    _check_header(version, inverse, payload_type, length)
    if len(frame) != HEADER_SIZE + length:
        raise ParseError(
            f"DoIP header announces {length} payload bytes; the frame carries "
            f"{len(frame) - HEADER_SIZE}"
        )
    return _decode_payload(version, payload_type, bytes(frame[HEADER_SIZE:]))


class DoipDecoder:
    """Frame a DoIP TCP byte stream into messages.

    Feed it whatever the socket delivered; it returns every message completed so far and
    keeps the rest. Messages before a bad header or an undecodable payload (a VIN that is
    not ASCII) are returned first and the next ``feed`` raises. After it raises, the stream
    has lost its framing: ISO 13400-2 says to send the header NACK in the error and close
    the socket.

    Args:
        max_payload: payloads announced larger than this raise ``DoipHeaderError`` with
            code MESSAGE_TOO_LARGE before any of them is buffered.
    """

    __slots__ = ("_buffer", "max_payload")

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self._buffer = bytearray()
        self.max_payload = max_payload

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[DoipMessage]:
        """Add received bytes; return the messages they complete, in order."""
        buffer = self._buffer
        buffer += data
        messages: list[DoipMessage] = []
        offset = 0
        end = len(buffer)
        while end - offset >= HEADER_SIZE:
            version, inverse, payload_type, length = HEADER.unpack_from(buffer, offset)
            try:
                _check_header(version, inverse, payload_type, length)
                if length > self.max_payload:
                    raise DoipHeaderError(
                        f"DoIP message of {length} bytes exceeds the {self.max_payload}-byte limit",
                        code=HeaderNackCode.MESSAGE_TOO_LARGE,
                    )
            except DoipHeaderError:
                if not messages:
                    raise
                # Hand over what came before the bad header; the next feed raises.
                break
            start = offset + HEADER_SIZE
            if end - start < length:
                break
            stop = start + length
            if payload_type == 0x8001:  # hot path: skip the generic dispatch
                source, target = _ADDRESSES.unpack_from(buffer, start)
                messages.append(
                    DiagnosticMessage(
                        source=source,
                        target=target,
                        data=bytes(buffer[start + 4 : stop]),
                        version=version,
                    )
                )
            else:
                try:
                    message = _decode_payload(version, payload_type, bytes(buffer[start:stop]))
                except ParseError:
                    if not messages:
                        raise
                    # As for a bad header: hand over what came before; the next feed raises.
                    break
                messages.append(message)
            offset = stop
        if offset:
            del buffer[:offset]
        return messages
