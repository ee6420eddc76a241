"""Garbage on every socket of the assembled simulator, while a good tester keeps working.

The cars, the good testers, the garbage and the checks live in ``tests/sim/garbage.py``,
which ``bench/fuzz.py`` drives with far more inputs (``make fuzz``). Here hypothesis sends
a hundred examples to each socket in turn, on a fresh connection or datagram per example;
after every example the good testers read the VIN (F190) over DoIP, HSFZ and D-CAN. Every
garbage TCP connection must end in the protocol's own refusal or a close, and nothing may
be logged at ERROR by asyncio, uvicorn or ecuworks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from tests.sim.garbage import (
    DOIP_GARBAGE,
    HSFZ_GARBAGE,
    HTTP_GARBAGE,
    SOCKETCAND_GARBAGE,
    Vehicles,
    check_control_api,
    check_doip_tcp,
    check_doip_udp,
    check_hsfz_tcp,
    check_hsfz_udp,
    check_vci_bridge,
)

EXAMPLES: Final = 100

_GARBAGE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def vehicles() -> Iterator[Vehicles]:
    running = Vehicles()
    running.start()
    try:
        yield running
        running.assert_serving()
    finally:
        running.stop()
    assert running.errors.ours() == []


@_GARBAGE
@given(garbage=DOIP_GARBAGE)
def test_doip_tcp_answers_garbage_with_a_nack_or_a_close(
    vehicles: Vehicles, garbage: bytes
) -> None:
    check_doip_tcp(vehicles, garbage)
    vehicles.assert_serving()


@_GARBAGE
@given(garbage=DOIP_GARBAGE)
def test_doip_udp_answers_garbage_with_a_nack_or_nothing(
    vehicles: Vehicles, garbage: bytes
) -> None:
    check_doip_udp(vehicles, garbage)
    vehicles.assert_serving()


@_GARBAGE
@given(garbage=HSFZ_GARBAGE)
def test_hsfz_tcp_answers_garbage_with_error_words_or_a_close(
    vehicles: Vehicles, garbage: bytes
) -> None:
    check_hsfz_tcp(vehicles, garbage)
    vehicles.assert_serving()


@_GARBAGE
@given(garbage=HSFZ_GARBAGE)
def test_hsfz_udp_ignores_garbage_and_still_identifies(vehicles: Vehicles, garbage: bytes) -> None:
    check_hsfz_udp(vehicles, garbage)
    vehicles.assert_serving()


@_GARBAGE
@given(garbage=HTTP_GARBAGE)
def test_control_api_answers_garbage_with_4xx_or_a_close(
    vehicles: Vehicles, garbage: bytes
) -> None:
    check_control_api(vehicles, garbage)
    vehicles.assert_serving()


@_GARBAGE
@given(garbage=SOCKETCAND_GARBAGE)
def test_vci_bridge_answers_garbage_with_an_error_or_a_close(
    vehicles: Vehicles, garbage: bytes
) -> None:
    check_vci_bridge(vehicles, garbage)
    vehicles.assert_serving()
