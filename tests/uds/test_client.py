"""The UDS client's timing and services, against in-memory ECUs (MemoryLink)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

import ecuworks.uds.client as client_module
from ecuworks.errors import LinkTimeout, NegativeResponse, UnexpectedResponse
from ecuworks.transport.memory import MemoryLink
from ecuworks.uds.client import Timing, UdsClient
from ecuworks.uds.dtc import Dtc
from ecuworks.uds.functional import (
    TesterPresent,
    disable_communication_all,
    disable_dtc_setting_all,
    enable_communication_all,
    enable_dtc_setting_all,
    functional_request,
)

ECU = 0x12
FAST = Timing(p2=0.05, p2_star=0.05, margin=0.0)  # for tests that expect silence
PATIENT = Timing(p2=10.0, p2_star=10.0, margin=0.0)  # for tests that expect an answer
VIN = b"WBA00000000000001"

Answers = Callable[[int, bytes], list[bytes]]


def ecu(answers: Answers) -> Callable[[int, bytes], AsyncIterator[bytes]]:
    """A responder that yields ``answers(target, request)`` in one go."""

    async def responder(target: int, request: bytes) -> AsyncIterator[bytes]:
        for answer in answers(target, request):
            yield answer

    return responder


async def open_link(answers: Answers, **kwargs: object) -> MemoryLink:
    link = MemoryLink(ecu(answers), **kwargs)  # type: ignore[arg-type]
    await link.open()
    return link


class SpyLink(MemoryLink):
    """Records the timeout of every receive and when each functional request went out."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.waits: list[float] = []
        self.receiving = asyncio.Event()
        self.functional_times: list[float] = []

    async def receive(self, target: int, timeout: float) -> bytes:
        self.waits.append(timeout)
        self.receiving.set()
        return await super().receive(target, timeout)

    async def _transmit_functional(self, payload: bytes) -> None:
        self.functional_times.append(asyncio.get_running_loop().time())
        await super()._transmit_functional(payload)


# -- request: the timing layer -----------------------------------------------------------


async def test_positive_answer_is_returned_whole() -> None:
    link = await open_link(lambda t, r: [b"\x62\xf1\x90" + VIN])
    client = UdsClient(link, ECU)
    assert await client.request(b"\x22\xf1\x90") == b"\x62\xf1\x90" + VIN
    assert link.sent == [(ECU, b"\x22\xf1\x90")]


async def test_negative_answer_raises_with_name_and_target() -> None:
    link = await open_link(lambda t, r: [b"\x7f\x22\x31"])
    with pytest.raises(NegativeResponse) as caught:
        await UdsClient(link, ECU).request(b"\x22\xf1\x90")
    error = caught.value
    assert (error.service, error.nrc, error.target) == (0x22, 0x31, ECU)
    assert error.nrc_name == "request out of range"
    assert "0x12" in str(error)


async def test_response_pending_answers_are_waited_through() -> None:
    link = await open_link(lambda t, r: [b"\x7f\x31\x78"] * 5 + [b"\x71\x01\xff\x00\x00"])
    answer = await UdsClient(link, ECU, timing=PATIENT).request(b"\x31\x01\xff\x00")
    assert answer == b"\x71\x01\xff\x00\x00"


async def test_busy_repeat_request_is_repeated_until_the_ecu_takes_it() -> None:
    # A storm of 0x21 (make faults) used to fail the final check's SVK read: the client
    # gave up at the first one, although ISO 14229-1 says to repeat the request.
    answers = iter([b"\x7f\x22\x21"] * 3 + [b"\x62\xf1\x90" + VIN])
    link = await open_link(lambda t, r: [next(answers)])
    answer = await UdsClient(link, ECU, timing=PATIENT).request(b"\x22\xf1\x90")
    assert answer == b"\x62\xf1\x90" + VIN
    assert link.sent == [(ECU, b"\x22\xf1\x90")] * 4


async def test_an_ecu_that_stays_busy_is_given_up_on_with_its_nrc() -> None:
    link = await open_link(lambda t, r: [b"\x7f\x22\x21"])
    with pytest.raises(NegativeResponse) as caught:
        await UdsClient(link, ECU, timing=FAST).request(b"\x22\xf1\x90")
    assert caught.value.nrc == 0x21
    assert len(link.sent) == 21  # the request and 20 repeats


async def test_response_pending_switches_the_wait_from_p2_to_p2_star() -> None:
    release = asyncio.Event()

    async def slow_erase(target: int, request: bytes) -> AsyncIterator[bytes]:
        yield b"\x7f\x31\x78"
        await release.wait()  # the ECU erases until the test lets it finish
        yield b"\x71\x01\xff\x00\x00"

    link = SpyLink(slow_erase)
    await link.open()
    client = UdsClient(link, ECU, timing=Timing(p2=0.05, p2_star=60.0, margin=0.0))
    task = asyncio.create_task(client.request(b"\x31\x01\xff\x00"))
    while len(link.waits) < 2:  # the client is waiting again after the 0x78
        link.receiving.clear()
        await link.receiving.wait()
    assert link.waits[0] == pytest.approx(0.05, abs=0.01)
    assert link.waits[1] == pytest.approx(60.0, abs=0.01)
    # Well past P2: a client still waiting with P2 would have timed out by now.
    await asyncio.sleep(0.2)
    assert not task.done()
    release.set()
    assert await task == b"\x71\x01\xff\x00\x00"


async def test_silence_raises_link_timeout() -> None:
    link = await open_link(lambda t, r: [])
    with pytest.raises(LinkTimeout, match=r"ECU 0x12 did not answer service 0x22"):
        await UdsClient(link, ECU, timing=FAST).request(b"\x22\xf1\x90")


async def test_silence_after_response_pending_raises_link_timeout() -> None:
    link = await open_link(lambda t, r: [b"\x7f\x31\x78"])
    with pytest.raises(LinkTimeout, match="response pending"):
        await UdsClient(link, ECU, timing=FAST).request(b"\x31\x01\xff\x00")


async def test_endless_response_pending_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_PENDING", 3)
    link = await open_link(lambda t, r: [b"\x7f\x31\x78"] * 4 + [b"\x71\x01\xff\x00\x00"])
    with pytest.raises(UnexpectedResponse, match="3 times"):
        await UdsClient(link, ECU, timing=FAST).request(b"\x31\x01\xff\x00")


async def test_stale_answers_to_other_services_are_discarded() -> None:
    # A late answer to an earlier ReadDataByIdentifier, positive and negative, arrives first.
    link = await open_link(
        lambda t, r: [b"\x62\xf1\x90" + VIN, b"\x7f\x22\x31", b"\x71\x01\x02\x02\x00"]
    )
    status = await UdsClient(link, ECU, timing=PATIENT).routine(0x0202, data=b"\x12\x34\x56\x78")
    assert status == b"\x00"


async def test_suppressed_positive_response_returns_without_waiting() -> None:
    link = await open_link(lambda t, r: [])
    client = UdsClient(link, ECU, timing=Timing(p2=30.0))
    async with asyncio.timeout(1.0):  # a client waiting for an answer would hang here
        assert await client.request(b"\x3e\x80") == b""
        assert await client.request(b"\x85\x82") == b""
    assert [payload for _, payload in link.sent] == [b"\x3e\x80", b"\x85\x82"]


async def test_requests_to_one_ecu_do_not_interleave() -> None:
    order: list[bytes] = []

    async def responder(target: int, request: bytes) -> AsyncIterator[bytes]:
        order.append(request)
        await asyncio.sleep(0)  # processing; the other request must not get in meanwhile
        order.append(b"done " + request)
        yield bytes((request[0] + 0x40,)) + request[1:]

    link = MemoryLink(responder)
    await link.open()
    client = UdsClient(link, ECU)
    await asyncio.gather(client.request(b"\x22\xf1\x90"), client.request(b"\x22\xf1\x01"))
    assert order == [
        b"\x22\xf1\x90",
        b"done \x22\xf1\x90",
        b"\x22\xf1\x01",
        b"done \x22\xf1\x01",
    ]


# -- sessions and reset ------------------------------------------------------------------


async def test_change_session_adopts_the_ecu_timings() -> None:
    # P2server_max 0x0032 = 50 ms, P2*server_max 0x01F4 = 500 x 10 ms = 5 s
    link = await open_link(lambda t, r: [b"\x50\x02\x00\x32\x01\xf4"])
    client = UdsClient(link, ECU, timing=Timing(p2=1.0, p2_star=9.0, margin=0.25))
    timings = await client.change_session(0x02)
    assert link.sent == [(ECU, b"\x10\x02")]
    assert timings.session == 0x02
    assert timings.p2_server_max == pytest.approx(0.050)
    assert timings.p2_star_server_max == pytest.approx(5.0)
    assert client.timing.p2 == pytest.approx(0.300)
    assert client.timing.p2_star == pytest.approx(5.25)


async def test_change_session_without_timing_record_keeps_the_timing() -> None:
    link = await open_link(lambda t, r: [b"\x50\x03"])
    client = UdsClient(link, ECU, timing=Timing(p2=1.0, p2_star=9.0))
    timings = await client.change_session(0x03)
    assert timings.p2_server_max is None
    assert client.timing == Timing(p2=1.0, p2_star=9.0)


async def test_change_session_checks_the_echo() -> None:
    link = await open_link(lambda t, r: [b"\x50\x01\x00\x32\x01\xf4"])
    with pytest.raises(UnexpectedResponse, match="session"):
        await UdsClient(link, ECU).change_session(0x02)


async def test_ecu_reset_waits_until_the_ecu_answers_again() -> None:
    polls = 0

    def rebooting(target: int, request: bytes) -> list[bytes]:
        nonlocal polls
        if request == b"\x11\x01":
            return [b"\x51\x01"]
        if request == b"\x3e\x00":
            polls += 1
            return [] if polls <= 3 else [b"\x7e\x00"]  # silent while it boots
        return [b"\x50\x02\x00\x32\x01\xf4"]

    link = await open_link(rebooting)
    client = UdsClient(link, ECU, timing=FAST)
    await client.change_session(0x02)
    assert client.timing != FAST
    await client.ecu_reset(wait=True, timeout=5.0)
    assert polls == 4
    assert client.timing == FAST  # back in the default session


async def test_ecu_reset_gives_up_with_a_clear_message() -> None:
    link = await open_link(lambda t, r: [b"\x51\x01"] if r == b"\x11\x01" else [])
    client = UdsClient(link, ECU, timing=FAST)
    with pytest.raises(LinkTimeout, match=r"ECU 0x12 did not come back within 0.3 s after reset"):
        await client.ecu_reset(timeout=0.3)
    polls = [p for _, p in link.sent if p == b"\x3e\x00"]
    assert 2 <= len(polls) <= 10  # bounded by the deadline, each poll waited about P2


async def test_ecu_reset_without_wait_does_not_poll() -> None:
    link = await open_link(lambda t, r: [b"\x51\x03"])
    await UdsClient(link, ECU).ecu_reset(0x03, wait=False)
    assert link.sent == [(ECU, b"\x11\x03")]


# -- services ----------------------------------------------------------------------------


async def test_read_did_returns_the_record_without_the_did() -> None:
    link = await open_link(lambda t, r: [b"\x62\xf1\x90" + VIN])
    assert await UdsClient(link, ECU).read_did(0xF190) == VIN


async def test_read_did_rejects_an_answer_for_another_did() -> None:
    link = await open_link(lambda t, r: [b"\x62\xf1\x01\x00"])
    with pytest.raises(UnexpectedResponse, match="DID"):
        await UdsClient(link, ECU).read_did(0xF190)


async def test_write_did_sends_the_record() -> None:
    link = await open_link(lambda t, r: [b"\x6e\x25\x02"])
    await UdsClient(link, ECU).write_did(0x2502, b"\x00\x03")
    assert link.sent == [(ECU, b"\x2e\x25\x02\x00\x03")]


async def test_routine_returns_the_status_record_and_checks_the_echo() -> None:
    link = await open_link(lambda t, r: [b"\x71\x01\xff\x01\x01"])
    client = UdsClient(link, ECU)
    assert await client.routine(0xFF01) == b"\x01"
    assert link.sent == [(ECU, b"\x31\x01\xff\x01")]
    with pytest.raises(UnexpectedResponse, match="routine"):
        await client.routine(0xFF00, data=b"\x44")


async def test_dtc_setting_and_communication_control_bytes() -> None:
    link = await open_link(
        lambda t, r: [bytes((r[0] + 0x40, r[1] & 0x7F))] if r[1] & 0x80 == 0 else []
    )
    client = UdsClient(link, ECU)
    await client.control_dtc_setting(False)
    await client.control_dtc_setting(True)
    await client.communication_control(0x03, 0x03)
    await client.tester_present()
    assert [p for _, p in link.sent] == [
        b"\x85\x02",
        b"\x85\x01",
        b"\x28\x03\x03",
        b"\x3e\x00",
    ]


async def test_read_dtcs_decodes_code_and_status() -> None:
    link = await open_link(lambda t, r: [bytes.fromhex("5902ff12345608abcdef2f")])
    dtcs = await UdsClient(link, ECU).read_dtcs(0x08)
    assert link.sent == [(ECU, b"\x19\x02\x08")]
    assert dtcs == [Dtc(code=0x123456, status=0x08), Dtc(code=0xABCDEF, status=0x2F)]
    assert str(dtcs[0]) == "0x123456"
    assert dtcs[0].confirmed
    assert not dtcs[0].test_failed


async def test_read_dtcs_rejects_another_report_type() -> None:
    link = await open_link(lambda t, r: [bytes.fromhex("5904ff123456081111")])
    with pytest.raises(UnexpectedResponse, match="sub-function 0x04"):
        await UdsClient(link, ECU).read_dtcs()


async def test_clear_dtcs_sends_the_group() -> None:
    link = await open_link(lambda t, r: [b"\x54"])
    await UdsClient(link, ECU).clear_dtcs()
    assert link.sent == [(ECU, b"\x14\xff\xff\xff")]


# -- vehicle-wide ------------------------------------------------------------------------


async def test_tester_present_sends_functional_3e80_at_the_interval() -> None:
    enough = asyncio.Event()
    seen = 0

    async def gateway(target: int, request: bytes) -> AsyncIterator[bytes]:
        nonlocal seen
        seen += 1
        if seen >= 5:
            enough.set()
        return
        yield b""  # pragma: no cover - makes this an async generator

    link = SpyLink(gateway, functional_targets=[0x10])
    await link.open()
    async with TesterPresent(link, interval=0.02) as keeper:
        await enough.wait()
        assert keeper.running
    assert not keeper.running
    count = len(link.sent)
    assert count >= 5
    assert keeper.sent == count
    assert set(link.sent) == {(link.functional_address, b"\x3e\x80")}
    times = link.functional_times
    # Fixed rate: the k-th message goes out no earlier than k intervals after the first.
    assert all(t - times[0] >= k * 0.02 - 0.001 for k, t in enumerate(times))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(link.sent) == count  # stopped on exit


async def test_tester_present_keeps_the_link_error_and_stops() -> None:
    link = await open_link(lambda t, r: [])
    await link.close()
    async with TesterPresent(link, interval=0.01) as keeper:
        for _ in range(3):
            await asyncio.sleep(0)
        assert not keeper.running
    assert keeper.error is not None
    assert link.sent == []


async def test_vehicle_wide_helpers_send_the_exact_bytes() -> None:
    link = await open_link(lambda t, r: [], functional_targets=[0x10, 0x12])
    await disable_dtc_setting_all(link)
    await disable_communication_all(link)
    await enable_communication_all(link)
    await enable_dtc_setting_all(link)
    functional = link.functional_address
    assert link.sent == [
        (functional, b"\x85\x82"),
        (functional, b"\x28\x81\x01"),
        (functional, b"\x28\x80\x01"),
        (functional, b"\x85\x81"),
    ]


async def test_functional_request_maps_each_ecu_to_its_final_answer() -> None:
    answers = {
        0x10: [b"\x7f\x22\x78", b"\x62\xf1\x90" + VIN],
        0x12: [b"\x7f\x22\x31"],
        0x18: [b"\x62\xf1\x90" + VIN],
    }
    link = await open_link(lambda t, r: answers[t], functional_targets=list(answers))
    result = await functional_request(link, b"\x22\xf1\x90", timeout=2.0, expected=3)
    assert result[0x10] == b"\x62\xf1\x90" + VIN
    assert result[0x18] == b"\x62\xf1\x90" + VIN
    negative = result[0x12]
    assert isinstance(negative, NegativeResponse)
    assert (negative.nrc, negative.target) == (0x31, 0x12)


async def test_functional_request_waits_for_the_final_answer_behind_a_pending_one() -> None:
    others_answered = asyncio.Event()

    async def responder(target: int, request: bytes) -> AsyncIterator[bytes]:
        if target == 0x10:
            yield b"\x7f\x22\x78"
            await others_answered.wait()
            await asyncio.sleep(0.01)  # the slow ECU's processing time, not synchronisation
            yield b"\x62\xf1\x90" + VIN
        else:
            yield b"\x62\xf1\x90" + VIN
            if target == 0x18:
                others_answered.set()

    link = MemoryLink(responder, functional_targets=[0x10, 0x12, 0x18])
    await link.open()
    result = await functional_request(link, b"\x22\xf1\x90", timeout=2.0, expected=3)
    assert result.get(0x10) == b"\x62\xf1\x90" + VIN
    assert sorted(result) == [0x10, 0x12, 0x18]
