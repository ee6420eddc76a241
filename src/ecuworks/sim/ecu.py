"""The UDS server of one simulated ECU (ISO 14229-1), as a sans-I/O state machine.

:class:`EcuServer` takes a request and the simulated time it reached the ECU and returns
the replies, each with its delay; it never reads a clock or touches a socket. Between
requests the owner calls :meth:`EcuServer.poll` at :meth:`EcuServer.next_deadline`, which
applies S3 timeouts, boot completion and the end of a security lockout. The services live
in ``ecu_data.py`` (0x22, 0x2E, 0x14, 0x19) and ``ecu_programming.py`` (0x31, 0x34, 0x36,
0x37); this module dispatches and keeps sessions, security access and resets.

Behaviour (docs/adr/0003, DOMAIN.md):

* **Sessions** 0x01 default, 0x02 programming, 0x03 extended, 0x41 coding. The positive
  response carries P2server_max = 50 ms and P2*server_max = 5000 ms (in 10 ms units,
  ISO 14229-1 DiagnosticSessionControl). The programming session is entered only from the
  extended or programming session; from another one it is NRC 0x7E
  subFunctionNotSupportedInActiveSession (the session exists, not from here). Entering it
  starts the bootloader (mode ``bootloader``); the bootloader has no coding session
  (NRC 0x12). Every session change locks security again.
* **S3server** = 5 s: a non-default session with no request for 5 s (after the last
  answer) falls back to default. Leaving the programming session (or any non-default
  session while the bootloader runs) by 10 01 or S3, an ECUReset, or a power loss, resets
  the ECU: the bootloader hands over only through a restart. The ECU is silent for its
  boot time, then ``bricked`` if a bootloader region is not valid, ``application`` if
  every region is valid and routine FF01 passed since the last erase, else
  ``bootloader``.
* **SecurityAccess**: levels 0x01 (extended, coding session) and 0x11 (programming
  session); 16-byte seeds from a ``random.Random(seed)``; key algorithm by name
  (``hmac-sha256``: HMAC-SHA256(secret, seed) cut to the seed's length, DESIGN.md). A key
  without a seed is 0x24; a wrong key 0x35, the third in a row 0x36 and then 0x37 on seed
  requests for 10 s. An unlocked level answers its seed request with zeros.
* **Long work** (erase, slow flash writes) answers ``7F sid 78`` at once and every 2 s
  until the final answer. The whole stream is returned by :meth:`EcuServer.handle` up
  front, each :class:`Reply` with its delay; until the final answer the ECU is busy:
  TesterPresent is still served, anything else is NRC 0x21 busyRepeatRequest.
* **Negative responses** follow ISO 14229-1's order: 0x11 unknown service (or one the
  current software, application or bootloader, lacks), 0x7F not in this session, then
  each service's length, sub-function and conditions. To a functionally addressed request
  the NRCs 0x11, 0x12, 0x31, 0x7E and 0x7F are not sent (ISO 14229-1, functional
  addressing). The suppressPosRspMsgIndicationBit is honoured by every service that has a
  sub-function; a final answer after 0x78 is always sent.
* A bricked or switched-off ECU, or one that is booting, answers nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable

from ecuworks.sim.ecu_base import (
    P2_SERVER_MAX,
    P2_STAR_SERVER_MAX,
    S3_SERVER,
    Refusal,
    Reply,
    negative,
)
from ecuworks.sim.ecu_data import clear_dtcs, read_data, read_dtcs, write_data
from ecuworks.sim.ecu_programming import Programming
from ecuworks.sim.state import EcuState, VehicleState
from ecuworks.wire.uds import (
    SUPPRESS_POSITIVE_RESPONSE,
    Nrc,
    ResetType,
    ServiceId,
    Session,
    is_response_pending,
)

__all__ = ["EcuServer", "Reply"]

KeyFunction = Callable[[bytes, bytes], bytes]
_Handler = Callable[[bytes, float], list[Reply]]


def _hmac_sha256(secret: bytes, seed: bytes) -> bytes:
    """The demo key algorithm of DESIGN.md."""
    return hmac.new(secret, seed, hashlib.sha256).digest()[: len(seed)]


_KEY_ALGORITHMS: dict[str, KeyFunction] = {"hmac-sha256": _hmac_sha256}

_S = ServiceId
# Sessions the software offers: the bootloader has no coding session.
_SESSIONS = frozenset({Session.DEFAULT, Session.PROGRAMMING, Session.EXTENDED})
_SESSIONS_IN_APPLICATION = _SESSIONS | {Session.CODING}
_NON_DEFAULT = frozenset({Session.PROGRAMMING, Session.EXTENDED, Session.CODING})
_PROGRAMMING_ONLY = frozenset({Session.PROGRAMMING})
_APPLICATION_SERVICES = frozenset(
    {
        _S.DIAGNOSTIC_SESSION_CONTROL,
        _S.ECU_RESET,
        _S.CLEAR_DIAGNOSTIC_INFORMATION,
        _S.READ_DTC_INFORMATION,
        _S.READ_DATA_BY_IDENTIFIER,
        _S.SECURITY_ACCESS,
        _S.COMMUNICATION_CONTROL,
        _S.WRITE_DATA_BY_IDENTIFIER,
        _S.ROUTINE_CONTROL,
        _S.REQUEST_DOWNLOAD,
        _S.TRANSFER_DATA,
        _S.REQUEST_TRANSFER_EXIT,
        _S.TESTER_PRESENT,
        _S.CONTROL_DTC_SETTING,
    }
)
# The bootloader keeps no fault memory and no coding.
_BOOTLOADER_SERVICES = _APPLICATION_SERVICES - {
    _S.CLEAR_DIAGNOSTIC_INFORMATION,
    _S.READ_DTC_INFORMATION,
    _S.WRITE_DATA_BY_IDENTIFIER,
}
# Services allowed only in some sessions; the others are allowed in every session.
_SESSIONS_FOR = {
    _S.SECURITY_ACCESS: _NON_DEFAULT,
    _S.COMMUNICATION_CONTROL: _NON_DEFAULT,
    _S.CONTROL_DTC_SETTING: _NON_DEFAULT,
    _S.WRITE_DATA_BY_IDENTIFIER: _NON_DEFAULT,
    _S.REQUEST_DOWNLOAD: _PROGRAMMING_ONLY,
    _S.TRANSFER_DATA: _PROGRAMMING_ONLY,
    _S.REQUEST_TRANSFER_EXIT: _PROGRAMMING_ONLY,
}
# Services whose second byte is a sub-function with the suppressPosRspMsgIndicationBit.
_WITH_SUB_FUNCTION = frozenset(
    {
        _S.DIAGNOSTIC_SESSION_CONTROL,
        _S.ECU_RESET,
        _S.SECURITY_ACCESS,
        _S.COMMUNICATION_CONTROL,
        _S.ROUTINE_CONTROL,
        _S.TESTER_PRESENT,
        _S.CONTROL_DTC_SETTING,
    }
)
# ISO 14229-1: a server does not send these NRCs to a functionally addressed request.
_FUNCTIONAL_SILENT = frozenset(
    {
        Nrc.SERVICE_NOT_SUPPORTED,
        Nrc.SUB_FUNCTION_NOT_SUPPORTED,
        Nrc.REQUEST_OUT_OF_RANGE,
        Nrc.SUB_FUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION,
        Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION,
    }
)
# Security levels (odd requestSeed sub-function) and the sessions that offer them.
_SECURITY_LEVELS = {
    0x01: frozenset({Session.EXTENDED, Session.CODING}),
    0x11: _PROGRAMMING_ONLY,
}
_SEED_LENGTH = 16
_MAX_FAILED_KEYS = 3
_LOCKOUT_SECONDS = 10.0
_LENGTH = Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT
# DiagnosticSessionControl response: P2server_max in ms, P2*server_max in 10 ms units.
_TIMING_RECORD = round(P2_SERVER_MAX * 1000).to_bytes(2, "big") + round(
    P2_STAR_SERVER_MAX * 100
).to_bytes(2, "big")


class EcuServer:
    """The UDS server of one ECU; see the module docstring for its behaviour.

    Args:
        state: the ECU's runtime state; the server changes it in place.
        vehicle: the vehicle it sits in (VIN, battery, gateway data).
        seed: seeds the random source of SecurityAccess seeds, for repeatable runs.
        protocol_scale: the clock's time scale. Physical durations (erase, write, boot) are
            simulated and shrink with it; the protocol's timers (S3server, P2server, the
            0x78 cadence, the security delay) are what a tester meets in real time, so they
            are multiplied by it to stay constant in real seconds.
    """

    def __init__(
        self,
        state: EcuState,
        vehicle: VehicleState,
        *,
        seed: int = 0,
        protocol_scale: float = 1.0,
    ) -> None:
        self.state = state
        self.vehicle = vehicle
        self._s3 = S3_SERVER * protocol_scale
        self._lockout = _LOCKOUT_SECONDS * protocol_scale
        # Not for cryptography: a repeatable source is the point of a simulator.
        self._random = random.Random(seed)  # noqa: S311
        self._programming = Programming(state, vehicle, scale=protocol_scale)
        self._level: int | None = None
        self._seed: tuple[int, bytes] | None = None
        self._failed_keys = 0
        self._lockout_until: float | None = None
        self._booting_until: float | None = None
        self._busy_until = 0.0
        self._handlers = self._handler_table()
        # A state loaded in a non-default session arms S3 at the first call that knows
        # the time (see next_deadline).
        self._s3_deadline: float | None = None

    # -- public API -------------------------------------------------------------------

    @property
    def security_level(self) -> int | None:
        """The unlocked security level (0x01 or 0x11), or None when locked."""
        return self._level

    @property
    def busy_until(self) -> float:
        """When the work of the last request ends (its final answer is due)."""
        return self._busy_until

    def handle(self, request: bytes, now: float, *, functional: bool = False) -> list[Reply]:
        """Take one request and return the ECU's replies.

        Args:
            request: the UDS request.
            now: simulated time at which it reached the ECU.
            functional: whether it was functionally addressed (to all ECUs).

        Returns:
            The replies in order, each with its delay after ``now``; empty for no answer.
        """
        self.poll(now)
        if not request or self._silent(now):
            return []
        sid = request[0]
        refused = False
        try:
            if now < self._busy_until and sid != _S.TESTER_PRESENT:
                raise Refusal(Nrc.BUSY_REPEAT_REQUEST, "still working on the last request")
            replies = self._dispatch(sid, request, now)
        except Refusal as refusal:
            refused = True
            silent = functional and refusal.nrc in _FUNCTIONAL_SILENT
            replies = [] if silent else [Reply(0.0, negative(sid, refusal.nrc))]
        if not refused:
            done = max((r.delay for r in replies), default=0.0)
            self._busy_until = max(self._busy_until, now + done)
            suppress = (
                sid in _WITH_SUB_FUNCTION
                and len(request) > 1
                and request[1] & SUPPRESS_POSITIVE_RESPONSE
            )
            if suppress and not any(is_response_pending(r.data) for r in replies):
                replies = []
        if self.state.session != Session.DEFAULT:
            self._s3_deadline = max(now, self._busy_until) + self._s3
        return replies

    def next_deadline(self) -> float | None:
        """Return when :meth:`poll` must run next, or None when nothing is pending.

        0.0 means "as soon as possible": a state loaded in a non-default session has no S3
        timer until a call with the time arms it.
        """
        deadlines = [d for d in (self._booting_until, self._lockout_until) if d is not None]
        if self.state.session != Session.DEFAULT:
            deadlines.append(0.0 if self._s3_deadline is None else self._s3_deadline)
        return min(deadlines, default=None)

    def poll(self, now: float) -> None:
        """Apply what is due at ``now``: S3 timeout, end of boot, end of a lockout."""
        if self.state.session != Session.DEFAULT:
            if self._s3_deadline is None:
                self._s3_deadline = max(now, self._busy_until) + self._s3
            elif now >= self._s3_deadline:
                at = self._s3_deadline
                if self._default_means_reset():
                    self._reset(at)
                else:
                    self._change_session(Session.DEFAULT)
        if self._booting_until is not None and now >= self._booting_until:
            self._booting_until = None
        if self._lockout_until is not None and now >= self._lockout_until:
            self._lockout_until = None
            self._failed_keys = 0

    def power_loss(self, now: float) -> None:
        """The supply dropped: lose everything in RAM and boot again from ``now``.

        A region being erased or written stays invalid. Replies handed out earlier with
        delays beyond ``now`` (an erase's final answer) must not be delivered.
        """
        self.poll(now)
        self._reset(now)

    # -- dispatch ---------------------------------------------------------------------

    def _silent(self, now: float) -> bool:
        """Whether the ECU hears nothing: bricked, off, or still booting."""
        if self.state.mode in ("bricked", "off"):
            return True
        return self._booting_until is not None and now < self._booting_until

    def _dispatch(self, sid: int, request: bytes, now: float) -> list[Reply]:
        """Check service and session, then run the service."""
        offered = (
            _APPLICATION_SERVICES if self.state.mode == "application" else _BOOTLOADER_SERVICES
        )
        if sid not in offered:
            raise Refusal(Nrc.SERVICE_NOT_SUPPORTED)
        service = ServiceId(sid)
        sessions = _SESSIONS_FOR.get(service)
        if sessions is not None and self.state.session not in sessions:
            raise Refusal(Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION)
        return self._handlers[service](request, now)

    def _handler_table(self) -> dict[ServiceId, _Handler]:
        """Return the service handlers, each ``(request, now) -> replies``."""
        ecu, vehicle, flash = self.state, self.vehicle, self._programming

        def at_once(answer: Callable[[bytes], bytes]) -> _Handler:
            return lambda request, _now: [Reply(0.0, answer(request))]

        return {
            _S.DIAGNOSTIC_SESSION_CONTROL: self._session_control,
            _S.ECU_RESET: self._ecu_reset,
            _S.SECURITY_ACCESS: lambda r, now: [Reply(0.0, self._security_access(r, now))],
            _S.ROUTINE_CONTROL: lambda r, _now: flash.routine(r, level=self._level),
            _S.TRANSFER_DATA: lambda r, _now: flash.transfer_data(r),
            _S.READ_DATA_BY_IDENTIFIER: at_once(lambda r: read_data(ecu, vehicle, r)),
            _S.WRITE_DATA_BY_IDENTIFIER: at_once(
                lambda r: write_data(ecu, vehicle, r, unlocked=self._level is not None)
            ),
            _S.CLEAR_DIAGNOSTIC_INFORMATION: at_once(lambda r: clear_dtcs(ecu, r)),
            _S.READ_DTC_INFORMATION: at_once(lambda r: read_dtcs(ecu, r)),
            _S.REQUEST_DOWNLOAD: at_once(lambda r: flash.request_download(r, level=self._level)),
            _S.REQUEST_TRANSFER_EXIT: at_once(flash.transfer_exit),
            _S.TESTER_PRESENT: at_once(
                lambda r: self._sub_function_only(r, {0x00}, exact_length=2)
            ),
            _S.COMMUNICATION_CONTROL: at_once(self._communication_control),
            # ControlDTCSetting: 01 on, 02 off; an option record may follow and is ignored.
            _S.CONTROL_DTC_SETTING: at_once(
                lambda r: self._sub_function_only(r, {0x01, 0x02}, exact_length=None)
            ),
        }

    def _communication_control(self, request: bytes) -> bytes:
        """CommunicationControl ``28 controlType communicationType``."""
        answer = self._sub_function_only(request, {0x00, 0x01, 0x02, 0x03}, exact_length=3)
        # communicationType: bits 0-1 say which messages (1 normal, 2 NM, 3 both).
        if not 1 <= request[2] & 0x03 <= 3:
            raise Refusal(Nrc.REQUEST_OUT_OF_RANGE, "communicationType")
        return answer

    @staticmethod
    def _sub_function_only(request: bytes, supported: set[int], exact_length: int | None) -> bytes:
        """Answer a service whose positive response echoes the sub-function."""
        if len(request) < 2:
            raise Refusal(_LENGTH)
        sub = request[1] & 0x7F
        if sub not in supported:
            raise Refusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED)
        if exact_length is not None and len(request) != exact_length:
            raise Refusal(_LENGTH)
        return bytes((request[0] + 0x40, sub))

    # -- sessions and resets ----------------------------------------------------------

    def _session_control(self, request: bytes, now: float) -> list[Reply]:
        """DiagnosticSessionControl ``10 session``."""
        if len(request) < 2:
            raise Refusal(_LENGTH)
        target = request[1] & 0x7F
        current = self.state.session
        offered = _SESSIONS_IN_APPLICATION if self.state.mode == "application" else _SESSIONS
        if target not in offered:
            raise Refusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED)
        if target == Session.PROGRAMMING and current not in (
            Session.EXTENDED,
            Session.PROGRAMMING,
        ):
            raise Refusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION)
        if len(request) != 2:
            raise Refusal(_LENGTH)
        answer = bytes((0x50, target)) + _TIMING_RECORD
        if target == Session.DEFAULT and self._default_means_reset():
            self._reset(now)
        else:
            self._change_session(Session(target))
        return [Reply(0.0, answer)]

    def _default_means_reset(self) -> bool:
        """Whether going back to the default session restarts the ECU (see module doc)."""
        state = self.state
        if state.session == Session.DEFAULT:
            return False
        return state.session == Session.PROGRAMMING or state.mode == "bootloader"

    def _change_session(self, session: Session) -> None:
        """Switch session: security locks again, the bootloader's RAM is dropped."""
        self._lock()
        self._programming.abort()
        self.state.session = session
        self._s3_deadline = None
        if session == Session.PROGRAMMING:
            self.state.mode = "bootloader"

    def _ecu_reset(self, request: bytes, now: float) -> list[Reply]:
        """ECUReset ``11 type``: answer, then boot."""
        answer = self._sub_function_only(
            request, {ResetType.HARD, ResetType.KEY_OFF_ON, ResetType.SOFT}, exact_length=2
        )
        self._reset(now)
        return [Reply(0.0, answer)]

    def _reset(self, at: float) -> None:
        """Restart the ECU at ``at``: RAM lost, default session, software chosen anew."""
        self._change_session(Session.DEFAULT)
        self._busy_until = at
        ecu = self.state
        if ecu.mode in ("bricked", "off"):
            return
        if not ecu.btld_valid:
            ecu.mode = "bricked"
            return
        ecu.mode = (
            "application" if ecu.application_valid and ecu.all_regions_valid else "bootloader"
        )
        self._booting_until = at + ecu.boot_ms / 1000

    # -- security access ----------------------------------------------------------------

    def _lock(self) -> None:
        """Lock every level and forget a pending seed."""
        self._level = None
        self._seed = None

    def _security_access(self, request: bytes, now: float) -> bytes:
        """SecurityAccess ``27 level`` (seed) / ``27 level+1 key``."""
        if len(request) < 2:
            raise Refusal(_LENGTH)
        sub = request[1] & 0x7F
        level = sub if sub % 2 else sub - 1
        sessions = _SECURITY_LEVELS.get(level)
        if sessions is None:
            raise Refusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED)
        if self.state.session not in sessions:
            raise Refusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION)
        if sub == level:
            return bytes((0x67, sub)) + self._new_seed(level, now)
        return self._check_key(level, request[2:], now)

    def _new_seed(self, level: int, now: float) -> bytes:
        """Return a seed for ``level`` (zeros if it is unlocked already)."""
        if self._lockout_until is not None and now < self._lockout_until:
            raise Refusal(Nrc.REQUIRED_TIME_DELAY_NOT_EXPIRED)
        if self._level == level:
            return bytes(_SEED_LENGTH)
        if self.state.security_algorithm not in _KEY_ALGORITHMS:
            raise Refusal(Nrc.CONDITIONS_NOT_CORRECT, "no such key algorithm")
        seed = self._random.randbytes(_SEED_LENGTH)
        if not any(seed):  # all zeros means "already unlocked"
            seed = b"\x01" + seed[1:]
        self._seed = (level, seed)
        return seed

    def _check_key(self, level: int, key: bytes, now: float) -> bytes:
        """Unlock ``level`` if ``key`` answers the pending seed."""
        if self._seed is None or self._seed[0] != level:
            raise Refusal(Nrc.REQUEST_SEQUENCE_ERROR, "no seed requested for this level")
        if not key:
            raise Refusal(_LENGTH)
        seed = self._seed[1]
        self._seed = None  # a seed answers one key, right or wrong
        algorithm = _KEY_ALGORITHMS[self.state.security_algorithm]
        expected = algorithm(self.state.security_secret, seed)
        if hmac.compare_digest(key, expected):
            self._level = level
            self._failed_keys = 0
            return bytes((0x67, level + 1))
        self._failed_keys += 1
        if self._failed_keys >= _MAX_FAILED_KEYS:
            self._lockout_until = now + self._lockout
            raise Refusal(Nrc.EXCEEDED_NUMBER_OF_ATTEMPTS)
        raise Refusal(Nrc.INVALID_KEY)
