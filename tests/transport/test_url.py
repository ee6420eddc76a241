"""VCI URLs: parsing, canonical form, the errors a technician reads, and the link factory."""

from __future__ import annotations

import pytest

from ecuworks.errors import ConfigError
from ecuworks.transport.isotp import BMW_DCAN, IsotpLink
from ecuworks.transport.url import VciUrl, open_link, parse_vci_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("doip://127.0.0.1:13400", VciUrl(scheme="doip", host="127.0.0.1", port=13400)),
        ("doip://127.0.0.1", VciUrl(scheme="doip", host="127.0.0.1", port=13400)),
        ("DOIP://[::1]:13401", VciUrl(scheme="doip", host="::1", port=13401)),
        (
            "doip://127.0.0.1?tls=1",
            VciUrl(scheme="doip", host="127.0.0.1", port=3496, options={"tls": "1"}),
        ),
        ("hsfz://127.0.0.1", VciUrl(scheme="hsfz", host="127.0.0.1", port=6801)),
        ("hsfz://localhost:16801", VciUrl(scheme="hsfz", host="localhost", port=16801)),
        ("can://virtual/bench", VciUrl(scheme="can", interface="virtual", channel="bench")),
        ("can://socketcan/can0", VciUrl(scheme="can", interface="socketcan", channel="can0")),
        (
            "can://pcan/PCAN_USBBUS1?bitrate=500000&fd=1",
            VciUrl(
                scheme="can",
                interface="pcan",
                channel="PCAN_USBBUS1",
                options={"bitrate": "500000", "fd": "1"},
            ),
        ),
        (
            "can://slcan//dev/ttyACM0",
            VciUrl(scheme="can", interface="slcan", channel="/dev/ttyACM0"),
        ),
    ],
)
def test_parse(url: str, expected: VciUrl) -> None:
    assert parse_vci_url(url) == expected


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("doip://127.0.0.1", "doip://127.0.0.1:13400"),
        ("DOIP://[::1]", "doip://[::1]:13400"),
        ("doip://127.0.0.1?tls=1", "doip://127.0.0.1:3496?tls=1"),
        ("hsfz://127.0.0.1", "hsfz://127.0.0.1:6801"),
        (
            "can://virtual/bench?fd=1&addressing=normal",
            "can://virtual/bench?addressing=normal&fd=1",
        ),
        ("can://virtual/a:b c", "can://virtual/a:b%20c"),
        ("can://slcan//dev/ttyACM0", "can://slcan//dev/ttyACM0"),
    ],
)
def test_str_is_canonical_and_parses_back(url: str, canonical: str) -> None:
    parsed = parse_vci_url(url)
    assert str(parsed) == canonical
    assert parse_vci_url(canonical) == parsed


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1", r"scheme 'ftp'; known schemes are doip, hsfz, can, e\.g\. doip://"),
        ("127.0.0.1:13400", r"no scheme; known schemes are doip, hsfz, can"),
        ("doip://:13400", r"no host: e\.g\. doip://127\.0\.0\.1:13400"),
        ("hsfz://", r"no host: e\.g\. hsfz://127\.0\.0\.1:6801"),
        ("doip://127.0.0.1:port", r"bad port; a port is a number 1-65535: e\.g\. doip://"),
        ("doip://127.0.0.1:70000", r"bad port"),
        ("doip://127.0.0.1/gateway", r"has a path"),
        ("can://virtual", r"needs a python-can interface and a channel: can://virtual/CHANNEL"),
        ("can://virtual/", r"needs a python-can interface and a channel"),
        ("can:///can0", r"needs a python-can interface and a channel"),
        ("can://virtual/x?fd=1&fd=0", r"option 'fd' twice"),
        ("doip://127.0.0.1?tls=perhaps", r"tls='perhaps' is not 1 or 0"),
    ],
)
def test_bad_urls_say_what_is_wrong_and_show_an_example(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_vci_url(url)


def test_open_link_for_can_builds_an_unopened_isotp_link() -> None:
    link = open_link("can://virtual/bench")
    assert isinstance(link, IsotpLink)
    assert not link.is_open
    assert (link.interface, link.channel, link.addressing) == ("virtual", "bench", BMW_DCAN)
    assert (link.tester_address, link.functional_address, link.bitrate, link.fd) == (
        0xF1,
        0xDF,
        500_000,
        False,
    )


def test_open_link_for_can_takes_options() -> None:
    link = open_link(
        parse_vci_url(
            "can://virtual/bench?addressing=normal&request_base=0x700&response_base=0x780"
            "&functional_id=0x6DF&bitrate=250000&fd=1&tester=0xF5"
        )
    )
    assert isinstance(link, IsotpLink)
    assert link.addressing.mode == "normal"
    assert (link.addressing.request_base, link.addressing.response_base) == (0x700, 0x780)
    assert link.addressing.functional_id == 0x6DF
    assert (link.bitrate, link.fd, link.tester_address) == (250_000, True, 0xF5)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("can://virtual/bench?speed=fast", r"unknown option speed .* can URLs know addressing"),
        ("can://virtual/bench?addressing=vag", r"addressing='vag' is not bmw or normal"),
        ("can://virtual/bench?request_base=0x700", r"request_base needs addressing=normal"),
        ("can://virtual/bench?bitrate=fast", r"bitrate='fast' is not a number"),
        ("can://virtual/bench?addressing=normal&request_base=0x900", r"not an 11-bit CAN id"),
        ("hsfz://127.0.0.1?tls=1", r"unknown option tls"),
        ("doip://127.0.0.1?cafile=ca.pem", r"cafile needs tls=1"),
    ],
)
def test_open_link_rejects_bad_options(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_link(url)


def test_open_link_for_doip() -> None:
    doip = pytest.importorskip("ecuworks.transport.doip")
    link = open_link("doip://127.0.0.1?tester=0x0EF4")
    assert isinstance(link, doip.DoipLink)
    assert (link.host, link.port, link.tester_address) == ("127.0.0.1", 13400, 0x0EF4)
    assert not link.is_open
    assert open_link("doip://[::1]?tls=1").ssl is not None  # type: ignore[attr-defined]


def test_open_link_for_hsfz() -> None:
    hsfz = pytest.importorskip("ecuworks.transport.hsfz")
    link = open_link("hsfz://127.0.0.1:16801")
    assert isinstance(link, hsfz.HsfzLink)
    assert (link.host, link.port, link.tester_address) == ("127.0.0.1", 16801, 0xF4)
    assert not link.is_open


def test_can_bridge_host_and_port_reach_python_can() -> None:
    link = open_link("can://socketcand/can0?host=127.0.0.1&port=29536")
    assert isinstance(link, IsotpLink)
    assert link._bus_kwargs == {"host": "127.0.0.1", "port": 29536}


def test_can_bridge_port_must_be_a_number() -> None:
    with pytest.raises(ConfigError, match="port"):
        open_link("can://socketcand/can0?host=127.0.0.1&port=abc")
