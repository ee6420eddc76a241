"""UDS (ISO 14229-1:2020) constants and the small codecs every service shares.

What lives here is what the client (``ecuworks.uds``) and the simulator (``ecuworks.sim``)
must agree on byte for byte, without either importing the other:

* service identifiers and the response framing rules: positive response SID = request SID +
  0x40, negative response ``7F <service> <nrc>``, suppressPosRspMsgIndicationBit 0x80 in the
  sub-function byte (ISO 14229-1:2020, the service description conventions);
* the negative response codes of Annex A.1, with readable names;
* the sessions (clause 10.2), reset types (clause 10.3), security level (clause 10.4), DIDs
  and routine identifiers this project uses (see DOMAIN.md);
* ``addressAndLengthFormatIdentifier`` + address + size, as carried by ReadMemoryByAddress
  (0x23), RequestDownload (0x34), RequestUpload (0x35), WriteMemoryByAddress (0x3D) and, in
  this project, by routine FF00 (erase);
* the RequestDownload positive response ``74 LFI maxNumberOfBlockLength``.

Every decoder raises only :class:`ecuworks.errors.ParseError`. Encoders and constructors
raise :class:`ecuworks.errors.ConfigError` for values that cannot be put on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ecuworks.errors import ConfigError, NegativeResponse, ParseError

__all__ = [
    "NEGATIVE_RESPONSE_SID",
    "POSITIVE_RESPONSE_OFFSET",
    "PROGRAMMING_SECURITY_KEY",
    "PROGRAMMING_SECURITY_LEVEL",
    "SUPPRESS_POSITIVE_RESPONSE",
    "Did",
    "NegativeResponseMessage",
    "Nrc",
    "ResetType",
    "Routine",
    "ServiceId",
    "Session",
    "decode_battery_volts",
    "decode_max_block_length",
    "decode_memory_location",
    "encode_memory_location",
    "is_negative",
    "is_response_pending",
    "nrc_name",
    "positive_sid",
]

NEGATIVE_RESPONSE_SID = 0x7F
POSITIVE_RESPONSE_OFFSET = 0x40
# Bit 7 of a sub-function byte: the server shall not send a positive response.
SUPPRESS_POSITIVE_RESPONSE = 0x80

# SecurityAccess (ISO 14229-1:2020, 10.4): odd sub-function requests the seed, the next even
# one sends the key. Programming needs level 0x11 in the programming session (DESIGN.md).
PROGRAMMING_SECURITY_LEVEL = 0x11
PROGRAMMING_SECURITY_KEY = PROGRAMMING_SECURITY_LEVEL + 1


class ServiceId(IntEnum):
    """Request service identifiers of ISO 14229-1:2020 (one per service, clause 10 on)."""

    DIAGNOSTIC_SESSION_CONTROL = 0x10
    ECU_RESET = 0x11
    CLEAR_DIAGNOSTIC_INFORMATION = 0x14
    READ_DTC_INFORMATION = 0x19
    READ_DATA_BY_IDENTIFIER = 0x22
    READ_MEMORY_BY_ADDRESS = 0x23
    READ_SCALING_DATA_BY_IDENTIFIER = 0x24
    SECURITY_ACCESS = 0x27
    COMMUNICATION_CONTROL = 0x28
    AUTHENTICATION = 0x29
    READ_DATA_BY_PERIODIC_IDENTIFIER = 0x2A
    DYNAMICALLY_DEFINE_DATA_IDENTIFIER = 0x2C
    WRITE_DATA_BY_IDENTIFIER = 0x2E
    INPUT_OUTPUT_CONTROL_BY_IDENTIFIER = 0x2F
    ROUTINE_CONTROL = 0x31
    REQUEST_DOWNLOAD = 0x34
    REQUEST_UPLOAD = 0x35
    TRANSFER_DATA = 0x36
    REQUEST_TRANSFER_EXIT = 0x37
    REQUEST_FILE_TRANSFER = 0x38
    WRITE_MEMORY_BY_ADDRESS = 0x3D
    TESTER_PRESENT = 0x3E
    ACCESS_TIMING_PARAMETER = 0x83
    SECURED_DATA_TRANSMISSION = 0x84
    CONTROL_DTC_SETTING = 0x85
    RESPONSE_ON_EVENT = 0x86
    LINK_CONTROL = 0x87


class Nrc(IntEnum):
    """Negative response codes, ISO 14229-1:2020 Annex A.1, table A.1.

    Codes not listed are reserved by ISO (0x01-0x0F, gaps, 0x95-0xEF, 0xFF) or left to the
    vehicle manufacturer (0xF0-0xFE); :func:`nrc_name` names those ranges.
    """

    GENERAL_REJECT = 0x10
    SERVICE_NOT_SUPPORTED = 0x11
    SUB_FUNCTION_NOT_SUPPORTED = 0x12
    INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT = 0x13
    RESPONSE_TOO_LONG = 0x14
    BUSY_REPEAT_REQUEST = 0x21
    CONDITIONS_NOT_CORRECT = 0x22
    REQUEST_SEQUENCE_ERROR = 0x24
    NO_RESPONSE_FROM_SUBNET_COMPONENT = 0x25
    FAILURE_PREVENTS_EXECUTION_OF_REQUESTED_ACTION = 0x26
    REQUEST_OUT_OF_RANGE = 0x31
    SECURITY_ACCESS_DENIED = 0x33
    AUTHENTICATION_REQUIRED = 0x34
    INVALID_KEY = 0x35
    EXCEEDED_NUMBER_OF_ATTEMPTS = 0x36
    REQUIRED_TIME_DELAY_NOT_EXPIRED = 0x37
    SECURE_DATA_TRANSMISSION_REQUIRED = 0x38
    SECURE_DATA_TRANSMISSION_NOT_ALLOWED = 0x39
    SECURE_DATA_VERIFICATION_FAILED = 0x3A
    # 0x50-0x5D: the Authentication service (0x29), new in the 2020 edition.
    CERTIFICATE_VERIFICATION_FAILED_INVALID_TIME_PERIOD = 0x50
    CERTIFICATE_VERIFICATION_FAILED_INVALID_SIGNATURE = 0x51
    CERTIFICATE_VERIFICATION_FAILED_INVALID_CHAIN_OF_TRUST = 0x52
    CERTIFICATE_VERIFICATION_FAILED_INVALID_TYPE = 0x53
    CERTIFICATE_VERIFICATION_FAILED_INVALID_FORMAT = 0x54
    CERTIFICATE_VERIFICATION_FAILED_INVALID_CONTENT = 0x55
    CERTIFICATE_VERIFICATION_FAILED_INVALID_SCOPE = 0x56
    CERTIFICATE_VERIFICATION_FAILED_INVALID_CERTIFICATE = 0x57
    OWNERSHIP_VERIFICATION_FAILED = 0x58
    CHALLENGE_CALCULATION_FAILED = 0x59
    SETTING_ACCESS_RIGHTS_FAILED = 0x5A
    SESSION_KEY_CREATION_DERIVATION_FAILED = 0x5B
    CONFIGURATION_DATA_USAGE_FAILED = 0x5C
    DEAUTHENTICATION_FAILED = 0x5D
    UPLOAD_DOWNLOAD_NOT_ACCEPTED = 0x70
    TRANSFER_DATA_SUSPENDED = 0x71
    GENERAL_PROGRAMMING_FAILURE = 0x72
    WRONG_BLOCK_SEQUENCE_COUNTER = 0x73
    REQUEST_CORRECTLY_RECEIVED_RESPONSE_PENDING = 0x78
    SUB_FUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION = 0x7E
    SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION = 0x7F
    # 0x81-0x94: conditions of the vehicle that prevent the request.
    RPM_TOO_HIGH = 0x81
    RPM_TOO_LOW = 0x82
    ENGINE_IS_RUNNING = 0x83
    ENGINE_IS_NOT_RUNNING = 0x84
    ENGINE_RUN_TIME_TOO_LOW = 0x85
    TEMPERATURE_TOO_HIGH = 0x86
    TEMPERATURE_TOO_LOW = 0x87
    VEHICLE_SPEED_TOO_HIGH = 0x88
    VEHICLE_SPEED_TOO_LOW = 0x89
    THROTTLE_PEDAL_TOO_HIGH = 0x8A
    THROTTLE_PEDAL_TOO_LOW = 0x8B
    TRANSMISSION_RANGE_NOT_IN_NEUTRAL = 0x8C
    TRANSMISSION_RANGE_NOT_IN_GEAR = 0x8D
    BRAKE_SWITCHES_NOT_CLOSED = 0x8F
    SHIFTER_LEVER_NOT_IN_PARK = 0x90
    TORQUE_CONVERTER_CLUTCH_LOCKED = 0x91
    VOLTAGE_TOO_HIGH = 0x92
    VOLTAGE_TOO_LOW = 0x93
    RESOURCE_TEMPORARILY_NOT_AVAILABLE = 0x94


# Readable names: the member name in plain words, with the few fixes a technician needs
# (0x78 is the ECU asking for more time, not an error: "response pending").
_WORD_FIXES = (
    ("sub function", "sub-function"),
    ("upload download", "upload/download"),
    ("failed invalid", "failed: invalid"),
    ("creation derivation", "creation/derivation"),
    ("deauthentication", "de-authentication"),
    ("throttle pedal", "throttle/pedal"),
)
_NRC_NAME_OVERRIDES = {
    Nrc.BUSY_REPEAT_REQUEST: "busy, repeat request",
    Nrc.REQUEST_CORRECTLY_RECEIVED_RESPONSE_PENDING: "response pending",
    Nrc.BRAKE_SWITCHES_NOT_CLOSED: "brake switch(es) not closed",
}


def _readable(member: str) -> str:
    """Return an enum member name as plain lower-case words."""
    words = member.lower().replace("_", " ")
    for old, new in _WORD_FIXES:
        words = words.replace(old, new)
    return words


_NRC_NAMES: dict[int, str] = {
    code: _NRC_NAME_OVERRIDES.get(code, _readable(code.name)) for code in Nrc
}


def _shown(data: bytes) -> str:
    """Return bytes as quoted hex for an error message, cut short after 16 bytes."""
    more = " ..." if len(data) > 16 else ""
    return f"'{data[:16].hex(' ')}{more}'" if data else "no bytes"


def nrc_name(code: int) -> str:
    """Return a readable name for a negative response code; never raises.

    Args:
        code: the NRC byte from ``7F <service> <nrc>``.

    Returns:
        The name from ISO 14229-1 table A.1 in plain words (``0x78`` → ``"response
        pending"``), ``"vehicle-manufacturer specific (0xF3)"`` for 0xF0-0xFE,
        ``"reserved (0x95)"`` for codes ISO reserves, or ``"not an NRC (...)"`` outside
        0x00-0xFF.
    """
    name = _NRC_NAMES.get(code)
    if name is not None:
        return name
    if not 0 <= code <= 0xFF:
        return f"not an NRC ({code})"
    if 0xF0 <= code <= 0xFE:
        return f"vehicle-manufacturer specific (0x{code:02X})"
    return f"reserved (0x{code:02X})"


def is_response_pending(response: bytes) -> bool:
    """Tell whether a response is ``7F <service> 78``: the ECU needs more time (P2*).

    Called for every response on the hot path, so it only checks length and two bytes.
    """
    return len(response) == 3 and response[0] == 0x7F and response[2] == 0x78


def is_negative(response: bytes) -> bool:
    """Tell whether a response starts with the negative response SID 0x7F.

    A well-formed negative response is exactly three bytes; use
    :meth:`NegativeResponseMessage.parse` to check that and read it.
    """
    return len(response) > 0 and response[0] == NEGATIVE_RESPONSE_SID


def positive_sid(service: int) -> int:
    """Return the SID of the positive response to a request (``service + 0x40``).

    Raises:
        ConfigError: ``service`` is not a request SID (0x00-0xBF), so no positive response
            SID fits in one byte.
    """
    if not 0 <= service <= 0xBF:
        raise ConfigError(f"0x{service:X} is not a UDS request service id (0x00-0xBF)")
    return service + POSITIVE_RESPONSE_OFFSET


@dataclass(frozen=True, slots=True, kw_only=True)
class NegativeResponseMessage:
    """A negative response ``7F <service> <nrc>`` (ISO 14229-1:2020, Annex A.1).

    Attributes:
        service: the SID of the request being refused.
        nrc: the negative response code.
    """

    service: int
    nrc: int

    def __post_init__(self) -> None:
        if not (0 <= self.service <= 0xFF and 0 <= self.nrc <= 0xFF):
            raise ConfigError(
                f"negative response needs one-byte service and NRC, got {self.service}, {self.nrc}"
            )

    @classmethod
    def parse(cls, data: bytes) -> NegativeResponseMessage:
        """Decode ``7F <service> <nrc>``.

        Raises:
            ParseError: ``data`` is not exactly three bytes starting with 0x7F.
        """
        if len(data) != 3 or data[0] != NEGATIVE_RESPONSE_SID:
            raise ParseError(
                f"negative response must be exactly '7F <service> <nrc>', got {_shown(data)}"
            )
        return cls(service=data[1], nrc=data[2])

    def encode(self) -> bytes:
        """Return the three bytes ``7F <service> <nrc>``."""
        return bytes((NEGATIVE_RESPONSE_SID, self.service, self.nrc))

    @property
    def name(self) -> str:
        """The NRC's readable name, see :func:`nrc_name`."""
        return nrc_name(self.nrc)

    def error(self, *, target: int | None = None) -> NegativeResponse:
        """Return the :class:`~ecuworks.errors.NegativeResponse` to raise for this answer."""
        return NegativeResponse(self.service, self.nrc, self.name, target=target)


class Session(IntEnum):
    """DiagnosticSessionControl (0x10) session types (ISO 14229-1:2020, 10.2)."""

    DEFAULT = 0x01
    PROGRAMMING = 0x02
    EXTENDED = 0x03
    # ISO's safetySystemDiagnosticSession; listed so that an ECU reporting it is readable.
    SAFETY_SYSTEM = 0x04
    # Vehicle-manufacturer range (0x40-0x5F): the BMW coding session (DOMAIN.md).
    CODING = 0x41


class Did(IntEnum):
    """Data identifiers this project reads and writes (ISO 14229-1 Annex C, DOMAIN.md)."""

    SVK = 0xF101
    ACTIVE_SESSION = 0xF186
    VIN = 0xF190
    PROGRAMMING_COUNTER = 0x2502
    PROGRAMMING_COUNTER_MAX = 0x2503
    # The gateway's records in this project (DESIGN.md): I-level triple, VO, battery mV.
    ILEVEL = 0xF1A0
    VEHICLE_ORDER = 0xF1A1
    BATTERY_MV = 0xF1A2
    # The CAFDs an ECU is coded with (SVK encoding, 8 bytes per SGBM-ID): written last in
    # the coding session, it puts the new CAFD into the ECU's SVK (this project's choice).
    CODING_CAFD = 0x37FE
    # Enabling codes (ecuworks.wire.fsc): read every accepted record / write one record;
    # and the ECU's status per application (read only).
    FSC_RECORDS = 0x1041
    FSC_STATUS = 0x1042


class Routine(IntEnum):
    """RoutineControl (0x31) identifiers of the flash sequence (DOMAIN.md, DESIGN.md)."""

    CHECK_MEMORY = 0x0202
    ENERGY_MODE = 0x0F0C
    ERASE_MEMORY = 0xFF00
    CHECK_PROGRAMMING_DEPENDENCIES = 0xFF01


class ResetType(IntEnum):
    """ECUReset (0x11) reset types (ISO 14229-1:2020, 10.3)."""

    HARD = 0x01
    KEY_OFF_ON = 0x02
    SOFT = 0x03


def _width(value: int, given: int | None, what: str) -> int:
    """Return the byte width for ``value``: ``given`` if it fits, else the minimal one."""
    if value < 0:
        raise ConfigError(f"memory {what} must not be negative, got {value}")
    needed = max(1, (value.bit_length() + 7) // 8)
    if given is None:
        width = needed
    elif not 1 <= given <= 15:
        raise ConfigError(f"memory {what} width must be 1-15 bytes, got {given}")
    elif given < needed:
        raise ConfigError(f"memory {what} 0x{value:X} does not fit in {given} byte(s)")
    else:
        width = given
    if width > 15:
        # The ALFID gives each length one nibble; 0 is reserved, so 15 bytes is the most.
        raise ConfigError(f"memory {what} 0x{value:X} needs more than 15 bytes")
    return width


def encode_memory_location(
    address: int, size: int, *, address_bytes: int | None = None, size_bytes: int | None = None
) -> bytes:
    """Encode ``addressAndLengthFormatIdentifier memoryAddress memorySize``.

    The ALFID's high nibble is the byte count of ``memorySize``, its low nibble that of
    ``memoryAddress``; both big-endian (ISO 14229-1:2020, RequestDownload request).

    Args:
        address: memory address, >= 0.
        size: memory size in bytes, >= 0.
        address_bytes: width of the address field, 1-15; by default the fewest bytes.
        size_bytes: width of the size field, 1-15; by default the fewest bytes.

    Returns:
        The ALFID byte followed by the address and the size.

    Raises:
        ConfigError: a value is negative, a width is outside 1-15, or a value does not fit.
    """
    a_len = _width(address, address_bytes, "address")
    s_len = _width(size, size_bytes, "size")
    return (
        bytes(((s_len << 4) | a_len,))
        + address.to_bytes(a_len, "big")
        + size.to_bytes(s_len, "big")
    )


def decode_memory_location(data: bytes) -> tuple[int, int, int]:
    """Decode ``ALFID address size`` from the start of ``data``.

    Returns:
        ``(address, size, consumed)``, where ``consumed`` is the number of bytes read, so
        that a caller can go on with what follows.

    Raises:
        ParseError: ``data`` is empty, a nibble of the ALFID is 0, or it is truncated.
    """
    if not data:
        raise ParseError("memory location is empty: expected ALFID, address and size")
    alfid = data[0]
    s_len, a_len = alfid >> 4, alfid & 0x0F
    if s_len == 0 or a_len == 0:
        raise ParseError(
            f"memory location ALFID 0x{alfid:02X} is invalid: both nibbles must be 1-15 "
            "(high = size bytes, low = address bytes)"
        )
    end = 1 + a_len + s_len
    if len(data) < end:
        raise ParseError(
            f"memory location with ALFID 0x{alfid:02X} needs {end} bytes, got {len(data)}"
        )
    address = int.from_bytes(data[1 : 1 + a_len], "big")
    size = int.from_bytes(data[1 + a_len : end], "big")
    return address, size, end


# A TransferData request is SID 0x36 + blockSequenceCounter + data, and
# maxNumberOfBlockLength counts all of it; below 3 no data byte would fit.
_MIN_BLOCK_LENGTH = 3


def decode_max_block_length(response: bytes) -> int:
    """Decode maxNumberOfBlockLength from a RequestDownload positive response.

    The response is ``74 LFI maxNumberOfBlockLength``: the high nibble of the
    lengthFormatIdentifier is the byte count (1-8 here) of the big-endian length; its low
    nibble is reserved by ISO and ignored. The length counts the whole TransferData request,
    service id and block counter included.

    Args:
        response: the complete positive response to 0x34.

    Returns:
        The largest TransferData request the ECU accepts, in bytes (>= 3).

    Raises:
        ParseError: not a 0x74 response, length nibble 0 or above 8, truncated or too long,
            or a length below 3, which leaves no room for data after SID and counter.
    """
    expected = "'74 LFI maxNumberOfBlockLength'"
    if len(response) < 2 or response[0] != 0x74:
        raise ParseError(f"RequestDownload response must be {expected}, got {_shown(response)}")
    n = response[1] >> 4
    if not 1 <= n <= 8:
        raise ParseError(
            f"RequestDownload response LFI 0x{response[1]:02X}: length must be 1-8 bytes, got {n}"
        )
    if len(response) != 2 + n:
        raise ParseError(
            f"RequestDownload response with LFI 0x{response[1]:02X} must be {2 + n} bytes, "
            f"got {len(response)}"
        )
    length = int.from_bytes(response[2:], "big")
    if length < _MIN_BLOCK_LENGTH:
        raise ParseError(
            f"RequestDownload maxNumberOfBlockLength {length} is below 3: no room for data "
            "after service id and block counter"
        )
    return length


def decode_battery_volts(record: bytes) -> float:
    """Decode the gateway's battery record (DID F1A2): millivolts, 2 bytes big-endian.

    Raises:
        ParseError: the record is not 2 bytes.
    """
    if len(record) != 2:
        raise ParseError(f"battery voltage record is not 2 bytes: {record.hex(' ')}")
    return int.from_bytes(record, "big") / 1000
