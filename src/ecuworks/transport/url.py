"""VCI URLs: one string that says how to reach a vehicle, and the factory that opens it.

::

    doip://127.0.0.1:13400            DoIP (ISO 13400-2); port 13400, or 3496 with ?tls=1
    doip://[::1]:13400?tls=1           IPv6 literals in brackets
    hsfz://127.0.0.1:6801             HSFZ (BMW F-series); port 6801
    can://virtual/CHANNEL             UDS over ISO-TP on a python-can interface and channel
    can://socketcan/can0?bitrate=500000&fd=1
    can://pcan/PCAN_USBBUS1?addressing=normal
    can://socketcand/can0?host=127.0.0.1&port=29536   (a network CAN bridge, e.g. a VCI)

Options after ``?`` are interpreted by :func:`open_link`, per scheme:

========== =================================================================================
scheme     options
========== =================================================================================
all        ``tester`` (tester address), ``functional`` (functional address); ints take
           ``0x`` hex
doip       ``tls`` (1/0), ``cafile`` (CA bundle to verify the entity's certificate)
hsfz       --
can        ``addressing`` (``bmw``, default, or ``normal``), ``request_base``,
           ``response_base``, ``functional_id`` (normal addressing), ``bitrate``, ``fd``
========== =================================================================================
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal, cast, get_args
from urllib.parse import quote, unquote, urlencode, urlsplit

from ecuworks.errors import ConfigError
from ecuworks.wire import doip as _doip
from ecuworks.wire import hsfz as _hsfz

if TYPE_CHECKING:
    from ecuworks.transport.base import Link

__all__ = ["Scheme", "VciUrl", "open_link", "parse_vci_url"]

Scheme = Literal["doip", "hsfz", "can"]
_SCHEMES: Final[tuple[str, ...]] = get_args(Scheme)
_EXAMPLES: Final = {
    "doip": "doip://127.0.0.1:13400",
    "hsfz": "hsfz://127.0.0.1:6801",
    "can": "can://virtual/CHANNEL or can://socketcan/can0",
}
_ALL_EXAMPLES: Final = ", ".join(_EXAMPLES.values())
_COMMON_OPTIONS: Final = frozenset({"tester", "functional"})
_OPTIONS: Final[dict[str, frozenset[str]]] = {
    "doip": _COMMON_OPTIONS | {"tls", "cafile"},
    "hsfz": _COMMON_OPTIONS,
    "can": _COMMON_OPTIONS
    | {"addressing", "request_base", "response_base", "functional_id", "bitrate", "fd"}
    # where a network CAN bridge listens (python-can's socketcand: the e-series VCI)
    | {"host", "port"},
}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
# Characters left readable in a CAN channel: python-can channels are names, paths
# (slcan's /dev/ttyACM0) or COM3@115200.
_CHANNEL_SAFE: Final = "/:@-._~"


@dataclass(frozen=True, slots=True, kw_only=True)
class VciUrl:
    """A parsed VCI URL; ``str()`` gives its canonical form.

    Attributes:
        scheme: ``doip``, ``hsfz`` or ``can``.
        host: host name or IP address (doip, hsfz).
        port: TCP port (doip, hsfz), the scheme's default if the URL had none.
        interface: python-can interface name (can).
        channel: the interface's channel (can).
        options: query options, by name.
    """

    scheme: Scheme
    host: str | None = None
    port: int | None = None
    interface: str | None = None
    channel: str | None = None
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        # A read-only copy, so that a frozen VciUrl stays what it was parsed as.
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def __str__(self) -> str:
        query = (
            f"?{urlencode(sorted(self.options.items()), quote_via=quote, safe='/:')}"
            if self.options
            else ""
        )
        if self.scheme == "can":
            channel = quote(self.channel or "", safe=_CHANNEL_SAFE)
            return f"can://{self.interface}/{channel}{query}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{query}"


def parse_vci_url(url: str) -> VciUrl:
    """Parse a VCI URL.

    Raises:
        ConfigError: the URL is not one of the forms in this module's docstring; the
            message shows a correct example.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        got = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ConfigError(
            f"VCI URL {url!r} has {got}; known schemes are {', '.join(_SCHEMES)}, "
            f"e.g. {_ALL_EXAMPLES}"
        )
    options = _parse_options(url, parts.query)
    if scheme == "can":
        interface = unquote(parts.netloc)
        channel = unquote(parts.path[1:])
        if not interface or not channel:
            raise ConfigError(
                f"VCI URL {url!r} needs a python-can interface and a channel: {_EXAMPLES['can']}"
            )
        return VciUrl(scheme="can", interface=interface, channel=channel, options=options)
    example = _EXAMPLES[scheme]
    if not parts.hostname:
        raise ConfigError(f"VCI URL {url!r} has no host: e.g. {example}")
    if parts.path not in ("", "/"):
        raise ConfigError(f"VCI URL {url!r} has a path, which {scheme} URLs do not: e.g. {example}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port <= 0xFFFF:
        raise ConfigError(
            f"VCI URL {url!r} has a bad port; a port is a number 1-65535: e.g. {example}"
        )
    if port is None:
        port = _default_port(scheme, options)
    return VciUrl(scheme=cast(Scheme, scheme), host=parts.hostname, port=port, options=options)


def _parse_options(url: str, query: str) -> Mapping[str, str]:
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        name, _, value = item.partition("=")
        name, value = unquote(name), unquote(value.replace("+", " "))
        if name in options:
            raise ConfigError(f"VCI URL {url!r} gives option {name!r} twice")
        options[name] = value
    return MappingProxyType(options)


def _default_port(scheme: str, options: Mapping[str, str]) -> int:
    if scheme == "hsfz":
        return int(_hsfz.TCP_PORT)
    tls = _flag(options, "tls", "doip://127.0.0.1?tls=1")
    return int(_doip.TLS_PORT if tls else _doip.TCP_PORT)


def _flag(options: Mapping[str, str], name: str, example: str) -> bool:
    value = options.get(name, "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"option {name}={options[name]!r} is not 1 or 0: e.g. {example}")


def _number(options: Mapping[str, str], name: str, default: int, example: str) -> int:
    value = options.get(name)
    if value is None:
        return default
    try:
        return int(value, 0)
    except ValueError:
        raise ConfigError(
            f"option {name}={value!r} is not a number (decimal or 0x hex): e.g. {example}"
        ) from None


def open_link(url: str | VciUrl) -> Link:
    """The link a VCI URL names, not yet opened (``await link.open()`` or ``async with``).

    Raises:
        ConfigError: the URL or one of its options cannot be used.
    """
    vci = url if isinstance(url, VciUrl) else parse_vci_url(url)
    unknown = set(vci.options) - _OPTIONS[vci.scheme]
    if unknown:
        raise ConfigError(
            f"unknown option {', '.join(sorted(unknown))} in VCI URL {str(vci)!r}; "
            f"{vci.scheme} URLs know {', '.join(sorted(_OPTIONS[vci.scheme]))}"
        )
    if vci.scheme == "can":
        return _open_can(vci)
    if vci.host is None or vci.port is None:
        raise ConfigError(
            f"a {vci.scheme} VCI URL needs a host and port: e.g. {_EXAMPLES[vci.scheme]}"
        )
    if vci.scheme == "doip":
        from ecuworks.transport.doip import DoipLink  # noqa: PLC0415 -- keeps imports light

        example = "doip://127.0.0.1:13400?tester=0x0EF3"
        context = None
        if _flag(vci.options, "tls", "doip://127.0.0.1:3496?tls=1"):
            context = ssl.create_default_context(cafile=vci.options.get("cafile"))
        elif "cafile" in vci.options:
            raise ConfigError(f"option cafile needs tls=1 in VCI URL {str(vci)!r}")
        return DoipLink(
            vci.host,
            vci.port,
            tester_address=_number(vci.options, "tester", _doip.TESTER_ADDRESS, example),
            functional_address=_number(
                vci.options, "functional", _doip.FUNCTIONAL_ADDRESS, example
            ),
            ssl=context,
        )
    from ecuworks.transport.hsfz import HsfzLink  # noqa: PLC0415 -- keeps imports light

    example = "hsfz://127.0.0.1:6801?tester=0xF4"
    return HsfzLink(
        vci.host,
        vci.port,
        tester_address=_number(vci.options, "tester", _hsfz.TESTER_ADDRESS, example),
        functional_address=_number(vci.options, "functional", _hsfz.FUNCTIONAL_ADDRESS, example),
    )


def _open_can(vci: VciUrl) -> Link:
    from ecuworks.transport.isotp import BMW_DCAN, IsotpLink, normal_11bit  # noqa: PLC0415

    if not vci.interface or not vci.channel:
        raise ConfigError(f"a can VCI URL needs an interface and a channel: {_EXAMPLES['can']}")
    options = vci.options
    example = "can://socketcan/can0?addressing=normal&request_base=0x700&response_base=0x780"
    kind = options.get("addressing", "bmw").lower()
    if kind == "bmw":
        extra = {"request_base", "response_base", "functional_id"} & set(options)
        if extra:
            raise ConfigError(
                f"option {', '.join(sorted(extra))} needs addressing=normal: e.g. {example}"
            )
        addressing = BMW_DCAN
    elif kind == "normal":
        addressing = normal_11bit(
            _number(options, "request_base", 0x7E0, example),
            _number(options, "response_base", 0x7E8, example),
            _number(options, "functional_id", 0x7DF, example),
        )
    else:
        raise ConfigError(f"option addressing={kind!r} is not bmw or normal: e.g. {example}")
    bridge: dict[str, object] = {}
    if "host" in options:
        bridge["host"] = options["host"]
    if "port" in options:
        bridge["port"] = _number(
            options, "port", 29536, "can://socketcand/can0?host=127.0.0.1&port=29536"
        )
    return IsotpLink(
        vci.interface,
        vci.channel,
        addressing=addressing,
        bus_kwargs=bridge,
        tester_address=_number(options, "tester", 0xF1, "can://virtual/bus?tester=0xF1"),
        functional_address=_number(
            options, "functional", 0xDF, "can://virtual/bus?functional=0xDF"
        ),
        bitrate=_number(options, "bitrate", 500_000, "can://pcan/PCAN_USBBUS1?bitrate=500000"),
        fd=_flag(options, "fd", "can://socketcan/can0?fd=1"),
    )
