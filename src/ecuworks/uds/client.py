"""The async UDS client: one ECU, any :class:`~ecuworks.transport.base.Link`.

Requests are encoded and answers decoded with udsoncan's service definitions where they fit
(``udsoncan.services.*.make_request`` / ``interpret_response``); the timing layer is ours:
P2 for the first answer, P2* after each "response pending" (NRC 0x78), as ISO 14229-2
(application layer timing) describes. Exchanges with one ECU are serialised by
``link.lock(target)``; exchanges with different ECUs run concurrently over one link.

Vehicle-wide (functional) requests -- tester present, DTC setting and communication control
for every ECU -- live in :mod:`ecuworks.uds.functional`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import TypeVar

from udsoncan.common.CommunicationType import CommunicationType
from udsoncan.exceptions import InvalidResponseException
from udsoncan.Request import Request
from udsoncan.Response import Response
from udsoncan.services.ClearDiagnosticInformation import ClearDiagnosticInformation
from udsoncan.services.CommunicationControl import CommunicationControl
from udsoncan.services.ControlDTCSetting import ControlDTCSetting
from udsoncan.services.DiagnosticSessionControl import DiagnosticSessionControl
from udsoncan.services.ECUReset import ECUReset
from udsoncan.services.ReadDTCInformation import ReadDTCInformation
from udsoncan.services.RoutineControl import RoutineControl
from udsoncan.services.SecurityAccess import SecurityAccess

from ecuworks.errors import (
    ConfigError,
    LinkTimeout,
    NegativeResponse,
    SecurityAlgorithmError,
    UnexpectedResponse,
)
from ecuworks.transport.base import Link
from ecuworks.uds import download as _download
from ecuworks.uds.dtc import REPORT_DTC_BY_STATUS_MASK, Dtc, parse_dtc_report
from ecuworks.uds.security import KeyAlgorithm, load_algorithm
from ecuworks.wire.uds import (
    NEGATIVE_RESPONSE_SID,
    POSITIVE_RESPONSE_OFFSET,
    SUPPRESS_POSITIVE_RESPONSE,
    Nrc,
    ResetType,
    nrc_name,
)

__all__ = [
    "MAX_PENDING",
    "SessionTimings",
    "Timing",
    "UdsClient",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# An ECU may answer "response pending" for as long as it works (an erase can take
# minutes), but not forever: past this many 0x78 answers to one request we give up.
MAX_PENDING = 1000
# Bounds the polls while waiting for an ECU to come back after a reset.
_MAX_RESET_POLLS = 1000
# The first reset poll waits this long for an answer; each next one twice as long, up to P2.
_FIRST_RESET_POLL_S = 0.01
_PENDING = Nrc.REQUEST_CORRECTLY_RECEIVED_RESPONSE_PENDING
# ISO 14229-1, NRC 0x21 busyRepeatRequest: the ECU did not take the request and the client
# repeats it. A short pause first; a bounded number of times, then the NRC is the caller's.
_BUSY = Nrc.BUSY_REPEAT_REQUEST
_BUSY_REPEAT_S = 0.05
_MAX_BUSY_REPEATS = 20

# Services with a sub-function byte, whose bit 7 is suppressPosRspMsgIndicationBit
# (ISO 14229-1, request message sub-function parameter). ReadDTCInformation (0x19) has a
# sub-function but ISO does not allow suppressing its answer: bit 7 there is no such flag.
_SUBFUNCTION_SERVICES = frozenset(
    (0x10, 0x11, 0x27, 0x28, 0x29, 0x2C, 0x31, 0x3E, 0x83, 0x85, 0x86, 0x87)
)

TESTER_PRESENT = b"\x3e\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """How long the client waits for answers (ISO 14229-2, application layer timing).

    Attributes:
        p2: seconds to wait for the first answer to a request; covers the ECU's
            P2server_max plus the transport (gateway routing on Ethernet).
        p2_star: seconds to wait after each "response pending" (NRC 0x78); ISO 14229-2's
            default P2*server_max is 5000 ms.
        margin: seconds added to the P2/P2* an ECU reports in its session answer, for the
            transport between tester and ECU.
    """

    p2: float = 1.0
    p2_star: float = 5.0
    margin: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTimings:
    """What an ECU reported when it entered a session (DiagnosticSessionControl answer).

    Attributes:
        session: the session the ECU entered.
        p2_server_max: seconds, or ``None`` if the ECU sent no timing record.
        p2_star_server_max: seconds, or ``None`` if the ECU sent no timing record.
    """

    session: int
    p2_server_max: float | None = None
    p2_star_server_max: float | None = None


_DEFAULT_TIMING = Timing()


# -- pure helpers ------------------------------------------------------------------------


def suppresses_response(payload: bytes) -> bool:
    """Tell whether a request asks the ECU not to answer positively (ISO 14229-1 SPRMIB)."""
    return (
        len(payload) >= 2
        and payload[0] in _SUBFUNCTION_SERVICES
        and bool(payload[1] & SUPPRESS_POSITIVE_RESPONSE)
    )


def _encode(make: Callable[[], Request]) -> bytes:
    """Build a request with udsoncan, mapping its ValueError to ConfigError."""
    try:
        return make().get_payload()
    except ValueError as exc:
        raise ConfigError(f"cannot encode UDS request: {exc}") from exc


def _decode(interpret: Callable[[Response], _T], payload: bytes) -> _T:
    """Interpret a positive response with udsoncan, mapping its errors to ours."""
    response = Response.from_payload(payload)
    if not response.valid:
        raise UnexpectedResponse(
            f"malformed answer {payload[:16].hex(' ')}: {response.invalid_reason}"
        )
    try:
        return interpret(response)
    except (InvalidResponseException, ValueError, NotImplementedError) as exc:
        raise UnexpectedResponse(f"malformed answer {payload[:16].hex(' ')}: {exc}") from exc


def _check_echo(what: str, sent: int, echoed: int) -> None:
    if sent != echoed:
        raise UnexpectedResponse(f"{what} 0x{sent:X} requested but the ECU answered 0x{echoed:X}")


# -- the client --------------------------------------------------------------------------


class UdsClient:
    """Talks UDS to one ECU over a shared link.

    Args:
        link: the open link to the vehicle.
        target: the ECU's address on that link.
        timing: the timing to start with (and to return to after a reset).
    """

    def __init__(self, link: Link, target: int, *, timing: Timing = _DEFAULT_TIMING) -> None:
        self.link = link
        self.target = target
        self.timing = timing
        self._baseline = timing

    def __repr__(self) -> str:
        return f"UdsClient(target=0x{self.target:02X}, timing={self.timing})"

    async def request(self, payload: bytes, *, timeout: float | None = None) -> bytes:
        """Send one request and return the ECU's positive answer.

        "Response pending" answers (``7F <sid> 78``) restart the wait with P2*; at most
        :data:`MAX_PENDING` of them are accepted. An answer that belongs to no request
        (another service's SID: a late answer to an earlier request that timed out) is
        discarded and the wait goes on, within the same deadline. "Busy, repeat request"
        (``7F <sid> 21``) sends the request again after a short pause, up to 20 times.

        Args:
            payload: the complete request, service id first.
            timeout: seconds to wait for the first answer instead of P2.

        Returns:
            The complete positive response (``sid + 0x40`` first), or ``b""`` when the
            request sets suppressPosRspMsgIndicationBit (the ECU may still answer an NRC,
            which the next exchange discards).

        Raises:
            NegativeResponse: the ECU refused the request.
            UnexpectedResponse: too many "response pending" answers.
            LinkTimeout: no answer in time.
            LinkError: the link failed.
        """
        async with self.link.lock(self.target):
            return await self._exchange(payload, timeout)

    async def _exchange(self, payload: bytes, first_wait: float | None = None) -> bytes:
        """Like :meth:`request`, for a caller that already holds ``link.lock(target)``.

        Package-internal: :mod:`ecuworks.uds.download` holds the lock for a whole transfer.
        """
        if not payload:
            raise ConfigError("a UDS request needs at least a service id")
        for _ in range(_MAX_BUSY_REPEATS):
            try:
                return await self._send_once(payload, first_wait)
            except NegativeResponse as exc:
                if exc.nrc != _BUSY:
                    raise
            await asyncio.sleep(min(self.timing.p2, _BUSY_REPEAT_S))
        return await self._send_once(payload, first_wait)  # busy still: its NRC is the caller's

    async def _send_once(self, payload: bytes, first_wait: float | None) -> bytes:
        """Send ``payload`` once; its answer (``b""`` when the request suppresses it)."""
        await self.link.send(self.target, payload)
        if suppresses_response(payload):
            return b""
        return await self._await_response(payload[0], first_wait=first_wait)

    async def _await_response(
        self, sid: int, *, first: bytes | None = None, first_wait: float | None = None
    ) -> bytes:
        """Wait for the final answer to ``sid``; ``first`` is one already received.

        The caller holds ``link.lock(target)``.
        """
        loop = asyncio.get_running_loop()
        positive = sid + POSITIVE_RESPONSE_OFFSET
        wait = self.timing.p2 if first_wait is None else first_wait
        deadline = loop.time() + wait
        pending = 0
        response = first
        while True:
            if response is None:
                remaining = deadline - loop.time()
                if remaining <= 0:  # only stray answers came before the deadline
                    raise LinkTimeout(self._silence(sid, wait, pending))
                try:
                    response = await self.link.receive(self.target, remaining)
                except LinkTimeout as exc:
                    raise LinkTimeout(self._silence(sid, wait, pending)) from exc
            if response and response[0] == positive:
                return response
            if len(response) >= 3 and response[0] == NEGATIVE_RESPONSE_SID and response[1] == sid:
                nrc = response[2]
                if nrc != _PENDING:
                    raise NegativeResponse(sid, nrc, nrc_name(nrc), target=self.target)
                pending += 1
                if pending > MAX_PENDING:
                    raise UnexpectedResponse(
                        f"ECU 0x{self.target:02X} answered 'response pending' to service "
                        f"0x{sid:02X} {MAX_PENDING} times and never finished"
                    )
                # ISO 14229-2: after NRC 0x78 the client waits P2*, restarted by each one.
                wait = self.timing.p2_star
                deadline = loop.time() + wait
            else:
                _log.debug(
                    "ECU 0x%02X: discarded %s while waiting for service 0x%02X",
                    self.target,
                    response[:8].hex(" "),
                    sid,
                )
            response = None

    def _silence(self, sid: int, wait: float, pending: int) -> str:
        after = " after its last 'response pending' (P2*)" if pending else ""
        return (
            f"ECU 0x{self.target:02X} did not answer service 0x{sid:02X} within {wait:g} s{after}"
        )

    async def change_session(self, session: int) -> SessionTimings:
        """DiagnosticSessionControl (0x10, ISO 14229-1:2020, 10.2).

        When the ECU reports P2server_max (ms) and P2*server_max (10 ms units), they,
        plus :attr:`Timing.margin`, become this client's :attr:`timing`.

        Returns:
            The session and the timings the ECU reported.
        """
        payload = _encode(lambda: DiagnosticSessionControl.make_request(session))
        answer = await self.request(payload)
        # A 2013+ ECU appends the 4-byte timing record; a 2006 one may send nothing.
        version = 2013 if len(answer) == 6 else 2006
        data = _decode(
            lambda r: DiagnosticSessionControl.interpret_response(r, standard_version=version),
            answer,
        ).service_data
        _check_echo("session", session, data.session_echo)
        timings = SessionTimings(
            session=session,
            p2_server_max=data.p2_server_max,
            p2_star_server_max=data.p2_star_server_max,
        )
        if data.p2_server_max is not None and data.p2_star_server_max is not None:
            margin = self.timing.margin
            self.timing = replace(
                self.timing,
                p2=data.p2_server_max + margin,
                p2_star=data.p2_star_server_max + margin,
            )
        return timings

    async def ecu_reset(
        self,
        reset_type: int = ResetType.HARD,
        *,
        wait: bool = True,
        timeout: float = 10.0,
    ) -> None:
        """ECUReset (0x11, ISO 14229-1:2020, 10.3), then wait until the ECU answers again.

        The ECU restarts in the default session, so the timing returns to the one this
        client was created with.

        Args:
            reset_type: the reset type (sub-function).
            wait: poll with tester present (``3E 00``) until the ECU answers again.
            timeout: seconds to wait for the ECU to come back.

        Raises:
            LinkTimeout: the ECU did not come back within ``timeout``.
        """
        payload = _encode(lambda: ECUReset.make_request(reset_type & 0x7F))
        if reset_type & SUPPRESS_POSITIVE_RESPONSE:
            payload = bytes((payload[0], payload[1] | SUPPRESS_POSITIVE_RESPONSE))
        answer = await self.request(payload)
        if answer:
            echoed = _decode(ECUReset.interpret_response, answer).service_data.reset_type_echo
            _check_echo("reset type", reset_type & 0x7F, echoed)
        self.timing = self._baseline
        if wait:
            await self._wait_back(timeout)

    async def _wait_back(self, within: float) -> None:
        """Poll with physical tester present until the ECU answers positively.

        A poll sent while the ECU boots goes unanswered and costs its whole wait, so the
        waits start short and double up to P2: the ECU is found soon after it is back
        (a fixed P2 wait overshot a 1 s boot by up to a whole P2 at every reset).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        window = _FIRST_RESET_POLL_S
        for _ in range(_MAX_RESET_POLLS):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = min(self.timing.p2, window, remaining)
            window *= 2
            try:
                async with asyncio.timeout(remaining):
                    await self.request(TESTER_PRESENT, timeout=wait)
            except TimeoutError:  # LinkTimeout, or the overall deadline hit mid-exchange
                continue
            except NegativeResponse:
                # Still booting (e.g. 0x21 busy): answering fast, so pause before the next.
                await asyncio.sleep(min(self.timing.p2, max(0.0, deadline - loop.time())))
                continue
            return
        raise LinkTimeout(
            f"ECU 0x{self.target:02X} did not come back within {within:g} s after reset; "
            "check its power supply and the connection, then identify the vehicle again"
        )

    async def security_access(
        self, level: int, key_algorithm: str | KeyAlgorithm, secret: bytes = b""
    ) -> None:
        """SecurityAccess (0x27, ISO 14229-1:2020, 10.4): request a seed, send the key.

        An all-zero seed means the level is already unlocked; no key is sent then.

        Args:
            level: the odd requestSeed sub-function (e.g. 0x11); the key goes with level+1.
            key_algorithm: an algorithm, or the name of an installed one.
            secret: the ECU's secret, handed to the algorithm.

        Raises:
            ConfigError: ``level`` is not an odd value 0x01-0x7D.
            SecurityAlgorithmError: unknown algorithm, or it failed.
            NegativeResponse: e.g. 0x35 invalid key, 0x36 exceeded number of attempts,
                0x37 required time delay not expired.
        """
        if not (0x01 <= level <= 0x7D and level % 2 == 1):
            raise ConfigError(f"security level 0x{level:X} must be odd, 0x01-0x7D")
        algorithm = (
            load_algorithm(key_algorithm) if isinstance(key_algorithm, str) else key_algorithm
        )
        request_seed = _encode(
            lambda: SecurityAccess.make_request(level, SecurityAccess.Mode.RequestSeed)
        )
        data = _decode(
            lambda r: SecurityAccess.interpret_response(r, SecurityAccess.Mode.RequestSeed),
            await self.request(request_seed),
        ).service_data
        _check_echo("security level", level, data.security_level_echo)
        seed = data.seed
        if not seed:
            raise UnexpectedResponse(f"ECU 0x{self.target:02X} sent an empty seed")
        if not any(seed):
            return  # ISO 14229-1 10.4: a zero seed means this level is already unlocked
        try:
            key = bytes(algorithm(seed, secret, level))
        except Exception as exc:  # a plugin may fail in any way
            raise SecurityAlgorithmError(
                f"the key algorithm failed for level 0x{level:X}: {exc}"
            ) from exc
        send_key = _encode(
            lambda: SecurityAccess.make_request(level + 1, SecurityAccess.Mode.SendKey, key)
        )
        data = _decode(
            lambda r: SecurityAccess.interpret_response(r, SecurityAccess.Mode.SendKey),
            await self.request(send_key),
        ).service_data
        _check_echo("security level", level + 1, data.security_level_echo)

    async def read_did(self, did: int) -> bytes:
        """ReadDataByIdentifier (0x22, ISO 14229-1) for one DID.

        Built by hand: udsoncan's codec needs a DID configuration to know record lengths,
        and this client hands the record back as raw bytes.

        Returns:
            The data record, without the echoed DID.
        """
        _check_did(did)
        answer = await self.request(b"\x22" + did.to_bytes(2, "big"))
        if len(answer) < 3:
            raise UnexpectedResponse(f"ReadDataByIdentifier answer too short: {answer.hex(' ')}")
        _check_echo("DID", did, int.from_bytes(answer[1:3], "big"))
        return answer[3:]

    async def write_did(self, did: int, data: bytes) -> None:
        """WriteDataByIdentifier (0x2E, ISO 14229-1) of a raw data record."""
        _check_did(did)
        answer = await self.request(b"\x2e" + did.to_bytes(2, "big") + data)
        if len(answer) < 3:
            raise UnexpectedResponse(f"WriteDataByIdentifier answer too short: {answer.hex(' ')}")
        _check_echo("DID", did, int.from_bytes(answer[1:3], "big"))

    async def routine(
        self,
        routine_id: int,
        control: int = 0x01,
        data: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> bytes:
        """RoutineControl (0x31, ISO 14229-1): start (01), stop (02), results (03).

        Args:
            routine_id: the routine identifier, e.g. 0xFF00 erase.
            control: the routine control type (sub-function).
            data: the routine control option record.
            timeout: seconds to wait for the first answer instead of P2.

        Returns:
            The routine status record (the bytes after ``71 <control> <id>``).
        """
        payload = _encode(lambda: RoutineControl.make_request(routine_id, control, data or None))
        answer = await self.request(payload, timeout=timeout)
        result = _decode(RoutineControl.interpret_response, answer).service_data
        _check_echo("routine control type", control, result.control_type_echo)
        _check_echo("routine", routine_id, result.routine_id_echo)
        return bytes(result.routine_status_record or b"")

    async def communication_control(
        self, control_type: int, communication_type: int = 0x01
    ) -> None:
        """CommunicationControl (0x28, ISO 14229-1:2020, 10.5) on this ECU."""
        payload = _encode(
            lambda: CommunicationControl.make_request(
                control_type, CommunicationType.from_byte(communication_type)
            )
        )
        answer = await self.request(payload)
        if answer:
            echoed = _decode(CommunicationControl.interpret_response, answer).service_data
            _check_echo("communication control type", control_type & 0x7F, echoed.control_type_echo)

    async def control_dtc_setting(self, enabled: bool) -> None:
        """ControlDTCSetting (0x85, ISO 14229-1): ``01`` on, ``02`` off."""
        setting = 0x01 if enabled else 0x02
        answer = await self.request(_encode(lambda: ControlDTCSetting.make_request(setting)))
        echoed = _decode(ControlDTCSetting.interpret_response, answer).service_data
        _check_echo("DTC setting type", setting, echoed.setting_type_echo)

    async def read_dtcs(self, status_mask: int = 0xFF) -> list[Dtc]:
        """ReadDTCInformation reportDTCByStatusMask (``19 02 <mask>``, ISO 14229-1)."""
        payload = _encode(
            lambda: ReadDTCInformation.make_request(
                REPORT_DTC_BY_STATUS_MASK, status_mask=status_mask
            )
        )
        return parse_dtc_report(await self.request(payload))

    async def clear_dtcs(self, group: int = 0xFFFFFF) -> None:
        """ClearDiagnosticInformation (0x14, ISO 14229-1); 0xFFFFFF is all groups."""
        await self.request(_encode(lambda: ClearDiagnosticInformation.make_request(group)))

    async def tester_present(self) -> None:
        """TesterPresent (``3E 00``) to this ECU, answered ``7E 00``."""
        await self.request(TESTER_PRESENT)

    async def download(
        self,
        address: int,
        size: int,
        chunks: Iterable[bytes] | AsyncIterable[bytes],
        *,
        data_format: int = 0x00,
        memory_format: tuple[int, int] | None = None,
        progress: Callable[[int, int], None] | None = None,
        transfer_size: int | None = None,
    ) -> _download.DownloadResult:
        """RequestDownload, TransferData, RequestTransferExit; see :func:`.download.download`.

        ``size`` is the memory size (uncompressed); ``transfer_size`` what ``chunks`` yields.
        """
        return await _download.download(
            self,
            address,
            size,
            chunks,
            data_format=data_format,
            memory_format=memory_format,
            progress=progress,
            transfer_size=transfer_size,
        )


def _check_did(did: int) -> None:
    if not 0 <= did <= 0xFFFF:
        raise ConfigError(f"a data identifier is two bytes, got 0x{did:X}")
