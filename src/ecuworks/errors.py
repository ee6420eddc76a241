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
    └── UdsError                              uds: the ECU's answer
        ├── NegativeResponse                  the ECU answered 7F <service> <nrc>
        ├── UnexpectedResponse                the ECU answered something that fits no request
        └── SecurityAlgorithmError            no key algorithm of that name, or it failed
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DoipHeaderError",
    "EcuworksError",
    "LinkClosed",
    "LinkError",
    "LinkTimeout",
    "NegativeResponse",
    "ParseError",
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
