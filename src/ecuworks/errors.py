"""Every error ecuworks raises, in one tree.

Each layer raises its own branch and translates lower-layer errors at its boundary with
``raise ... from``, so a caller can catch as broadly or as narrowly as it needs. Errors that
have a matching built-in also subclass it (``LinkTimeout`` is a ``TimeoutError``), as
python-can does, so generic handlers keep working.

A message a technician may read says what happened, why, and what to do.

::

    EcuworksError
    ├── ParseError (ValueError)               wire: bytes or text that do not decode
    │   └── DoipHeaderError                   a DoIP header to answer with a header NACK
    ├── ConfigError (ValueError)              a setting or URL that cannot be used
    ├── LinkError (ConnectionError)           transport: the path to the ECUs
    │   ├── LinkTimeout (TimeoutError)        no answer in time
    │   ├── LinkClosed                        the connection dropped or was closed
    │   ├── RoutingActivationDenied           the DoIP entity refused the tester
    │   └── TransportNack                     the gateway refused one message (DoIP/HSFZ)
    ├── PDataMismatch                         programming data failed its signed metadata
    ├── Refused                               a pre-check said no before the vehicle was touched
    ├── InterfaceReserved                     another workstation holds the VCI's reservation
    ├── ProgrammingFailed                     an action failed while programming (journal kept)
    ├── JournalError                          the session journal cannot be read or written
    └── UdsError                              uds: the ECU's answer
        ├── NegativeResponse                  the ECU answered 7F <service> <nrc>
        ├── UnexpectedResponse                the ECU answered something that fits no request
        ├── SecurityAlgorithmError            no key algorithm of that name, or it failed
        └── FscRefused                        enabling: the ECU did not accept an enabling code
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "ConfigError",
    "DoipHeaderError",
    "EcuworksError",
    "FscRefused",
    "InterfaceReserved",
    "JournalError",
    "LinkClosed",
    "LinkError",
    "LinkTimeout",
    "MismatchReason",
    "NegativeResponse",
    "PDataMismatch",
    "ParseError",
    "ProgrammingFailed",
    "Refused",
    "RoutingActivationDenied",
    "SecurityAlgorithmError",
    "TransportNack",
    "UdsError",
    "UnexpectedResponse",
]


class EcuworksError(Exception):
    """Root of every error ecuworks raises on purpose."""


class ParseError(EcuworksError, ValueError):
    """Bytes or text that do not decode as the expected message or identifier."""


class DoipHeaderError(ParseError):
    """A DoIP generic header that ISO 13400-2 answers with a generic header NACK.

    Attributes:
        code: the header NACK code to send back (ISO 13400-2, generic header NACK codes).
    """

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class ConfigError(EcuworksError, ValueError):
    """A setting, option or URL that cannot be used as given."""


class LinkError(EcuworksError, ConnectionError):
    """The path to the vehicle failed: socket, gateway or bus."""


class LinkTimeout(LinkError, TimeoutError):
    """No answer arrived within the allowed time."""


class LinkClosed(LinkError):
    """The connection to the vehicle was closed or dropped; reconnect to go on."""


class RoutingActivationDenied(LinkError):
    """The DoIP entity refused routing activation for this tester.

    Attributes:
        code: the routing activation response code (ISO 13400-2, table 48).
    """

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class TransportNack(LinkError):
    """The gateway refused one diagnostic message (DoIP 0x8003 or an HSFZ error word).

    Attributes:
        target: the logical address the message was for.
        code: the transport's negative acknowledge code.
    """

    def __init__(self, message: str, *, target: int, code: int) -> None:
        super().__init__(message)
        self.target = target
        self.code = code


class UdsError(EcuworksError):
    """The ECU's UDS answer did not let the request succeed."""


class NegativeResponse(UdsError):
    """The ECU answered a request with ``7F <service> <nrc>`` (ISO 14229-1, A.1).

    Attributes:
        service: the request's service id.
        nrc: the negative response code.
        nrc_name: the NRC's name from ISO 14229-1 table A.1.
        target: the ECU's address, when known.
    """

    def __init__(self, service: int, nrc: int, nrc_name: str, *, target: int | None = None) -> None:
        where = f" from ECU 0x{target:02X}" if target is not None else ""
        super().__init__(f"service 0x{service:02X} refused{where}: NRC 0x{nrc:02X} {nrc_name}")
        self.service = service
        self.nrc = nrc
        self.nrc_name = nrc_name
        self.target = target


class UnexpectedResponse(UdsError):
    """The ECU answered with something that is no answer to the request sent."""


class SecurityAlgorithmError(UdsError):
    """No security key algorithm is registered under that name, or it failed."""


class FscRefused(UdsError):
    """The ECU took an enabling code (FSC) but did not accept it: rejected or invalid.

    Raised by ``ecuworks.enabling.fsc.ensure_accepted``; the message names the ECU, the
    function and why (another vehicle's VIN, or a signature that does not verify), and
    says to request a new code.

    Attributes:
        app_id: the application the code is for.
        status: the ECU's verdict, an ``ecuworks.wire.fsc.FscStatus`` value (1 rejected,
            2 invalid).
    """

    def __init__(self, message: str, *, app_id: int, status: int) -> None:
        super().__init__(message)
        self.app_id = app_id
        self.status = status


MismatchReason = Literal[
    "hash",
    "length",
    "signature",
    "rollback",
    "expired",
    "unknown-unit",
    "mix-and-match",
    "threshold",
]

_SYNC = "run `ecuworks pdata sync` to fetch the data again"
_REPORT = "if it happens again, do not program: report it to the P-Data publisher"

# What to do, per reason: the message ends with it (STYLE.md: what, why, what to do).
_ADVICE: Final[dict[str, str]] = {
    "hash": f"the file was damaged or altered; {_SYNC}, then retry",
    "length": f"the file is damaged, truncated or padded; {_SYNC}, then retry",
    "signature": f"the metadata is not signed by a trusted key; {_SYNC}; {_REPORT}",
    "threshold": f"too few trusted keys signed the metadata; {_SYNC}; {_REPORT}",
    "rollback": f"someone may be serving old data; {_SYNC} from the configured server; {_REPORT}",
    "expired": f"the data is out of date; {_SYNC} with network access; {_REPORT}",
    "unknown-unit": f"the signed data does not list it; {_SYNC} for the latest release",
    "mix-and-match": f"the metadata versions do not belong together; {_SYNC}; {_REPORT}",
}


class PDataMismatch(EcuworksError):
    """Programming data failed verification against the signed metadata; nothing was sent.

    The CLI maps it to exit code 3 (refused before touching the vehicle).

    Attributes:
        unit: the unit (``series/path`` of a target) or metadata role that failed, or
            ``None`` when the whole repository is at fault.
        reason: which check failed.
        detail: what exactly was found, for the log and the technician.
    """

    def __init__(self, *, unit: str | None, reason: MismatchReason, detail: str) -> None:
        super().__init__(
            f"P-Data mismatch: {unit or 'repository'} ({reason}): {detail}; {_ADVICE[reason]}"
        )
        self.unit = unit
        self.reason: MismatchReason = reason
        self.detail = detail


class Refused(EcuworksError):
    """A pre-check refused the job before anything was written to the vehicle.

    The CLI maps it to exit code 3. The message names what was measured, the threshold,
    and what to do (e.g. "battery 12.20 V is below 13.00 V: connect a charger").

    Attributes:
        check: which pre-check: ``"voltage"``, ``"stale-plan"``, ``"reservation"``,
            ``"journal"``, ``"vehicle"``.
    """

    def __init__(self, message: str, *, check: str) -> None:
        super().__init__(message)
        self.check = check


class InterfaceReserved(EcuworksError):
    """Another workstation holds the vehicle interface's reservation.

    Attributes:
        owner: who holds it.
        expires_in: seconds until that lease runs out unless renewed, if known.
    """

    def __init__(self, message: str, *, owner: str, expires_in: float | None = None) -> None:
        super().__init__(message)
        self.owner = owner
        self.expires_in = expires_in


class ProgrammingFailed(EcuworksError):
    """An action failed for good while programming; the journal keeps where it stopped.

    The CLI maps it to exit code 4 and points at ``ecuworks resume``.

    Attributes:
        ecu: the ECU's diagnostic address, or None for a vehicle-wide step.
        action: the journal key of the failed action or step.
    """

    def __init__(self, message: str, *, ecu: int | None = None, action: str = "") -> None:
        super().__init__(message)
        self.ecu = ecu
        self.action = action


class JournalError(EcuworksError):
    """The session journal (SQLite) cannot be opened, read or written.

    Nothing is sent to a vehicle without a working journal.
    """


class DatabaseError(EcuworksError):
    """The platform's database cannot be opened, migrated, read or written.

    The message says which database (its URL without the password) and what to do; the
    CLI maps it to exit code 3, the web UI to a page that says so.
    """


class AccessDenied(EcuworksError):
    """The user may not do this (wrong role, locked, unknown token).

    Attributes:
        status: the HTTP status the web layer answers with (401 or 403, 429 when locked).
    """

    def __init__(self, message: str, *, status: int = 403) -> None:
        super().__init__(message)
        self.status = status
