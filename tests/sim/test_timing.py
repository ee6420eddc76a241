"""The simulator's clock and bus arithmetic: DOMAIN.md's reference figures come out of it."""

from __future__ import annotations

import doctest
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecuworks.errors import ConfigError
from ecuworks.profiles import bus_timing
from ecuworks.profiles.model import BusProfile
from ecuworks.sim import timing
from ecuworks.sim.timing import (
    BusScheduler,
    Clock,
    can_frame_bits,
    can_frame_seconds,
    canfd_frame_seconds,
    canfd_length,
    ethernet_transfer_seconds,
    flexray_transfer_seconds,
    isotp_transfer_seconds,
    transfer_seconds,
)

# A UDS TransferData of maxNumberOfBlockLength 0xFFF ("~4 KiB blocks"): 36, the block
# counter and 4093 data bytes; the ECU answers 76 <counter> in a single frame.
BLOCK = 0xFFF
DATA_PER_BLOCK = BLOCK - 2


def uds_download_rate(**isotp: object) -> float:
    """Data bytes per second of back-to-back TransferData blocks over ISO-TP."""
    request = isotp_transfer_seconds(BLOCK, **isotp)  # type: ignore[arg-type]
    response = isotp_transfer_seconds(2, **isotp)  # type: ignore[arg-type]
    return DATA_PER_BLOCK / (request + response)


# DOMAIN.md, "Times and limits": (what, computed bytes/s, reference bytes/s, tolerance).
CAN = {"bitrate": 500_000}
FD = {"bitrate": 500_000, "frame_data": 64, "fd_data_bitrate": 2_000_000}
REFERENCES = [
    ("CAN 500k, STmin 0, BS 0", uds_download_rate(**CAN, stuffing="none"), 31e3, 0.03),
    ("same, worst-case stuffing", uds_download_rate(**CAN, stuffing="worst"), 26e3, 0.03),
    ("same with STmin 1 ms", uds_download_rate(**CAN, stmin_s=0.001, stuffing="none"), 5.7e3, 0.03),
    ("CAN FD 500k/2M, 64-byte frames", uds_download_rate(**FD, stuffing="none"), 185e3, 0.03),
    ("100BASE-TX TCP goodput", 1e8 / ethernet_transfer_seconds(10**8, 100e6), 11.9e6, 0.01),
    ("1000BASE-T1 TCP goodput", 1e9 / ethernet_transfer_seconds(10**9, 1e9), 119e6, 0.01),
]


@pytest.mark.parametrize(
    ("what", "computed", "reference", "tolerance"), REFERENCES, ids=[r[0] for r in REFERENCES]
)
def test_domain_reference_figures(
    what: str, computed: float, reference: float, tolerance: float
) -> None:
    assert computed == pytest.approx(reference, rel=tolerance), what


def test_typical_stuffing_lies_between_the_ceiling_and_the_worst_case() -> None:
    ceiling = uds_download_rate(**CAN, stuffing="none")
    typical = uds_download_rate(**CAN, stuffing="typical")
    worst = uds_download_rate(**CAN, stuffing="worst")
    assert worst < typical < ceiling
    assert typical == pytest.approx(30.5e3, rel=0.01)  # random data: 1 stuff bit per 30


def test_module_doc_examples_hold() -> None:
    assert doctest.testmod(timing).failed == 0
    assert doctest.testmod(bus_timing).failed == 0
    assert doctest.testmod(bus_timing).attempted >= 8  # the frame helpers' examples too


# --- frames ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "extended", "stuffing", "bits"),
    [
        (8, False, "none", 111),  # 1 + 18 + 64 + 15 stuffable, + 10 + 3
        (8, False, "worst", 135),  # + floor((98 - 1) / 4) = 24
        (0, False, "none", 47),
        (0, False, "worst", 55),
        (8, True, "none", 131),
        (8, True, "worst", 160),  # the textbook worst case of an 8-byte extended frame
    ],
)
def test_classic_can_frame_bits(data: int, extended: bool, stuffing: str, bits: float) -> None:
    assert can_frame_bits(data, extended_id=extended, stuffing=stuffing) == bits  # type: ignore[arg-type]


def test_classic_frame_time_at_500k() -> None:
    assert can_frame_seconds(8, 500_000, stuffing="none") == pytest.approx(222e-6)


@pytest.mark.parametrize(
    ("data", "length"),
    [(0, 0), (7, 7), (8, 8), (9, 12), (13, 16), (17, 20), (21, 24), (25, 32), (33, 48), (49, 64)],
)
def test_canfd_lengths_step_through_the_dlc_table(data: int, length: int) -> None:
    assert canfd_length(data) == length


def test_canfd_crc_grows_from_17_to_21_bits_above_16_bytes() -> None:
    def data_phase_bits(n: int) -> float:
        # With equal rates the frame time is all bits over one rate.
        return canfd_frame_seconds(n, 1, 1, stuffing="none") - 8 * n

    # 17-bit CRC + 4-bit stuff count + 6 fixed stuff bits; 21 + 4 + 7 above 16 bytes.
    assert data_phase_bits(20) - data_phase_bits(16) == (21 + 4 + 7) - (17 + 4 + 6)


def test_canfd_64_byte_frame_spends_most_time_in_the_data_phase() -> None:
    seconds = canfd_frame_seconds(64, 500_000, 2_000_000, stuffing="none")
    # 30 arbitration-rate bits (SOF..BRS, CRC delimiter, ACK, EOF, intermission) at
    # 500k, 549 data-phase bits at 2M.
    assert seconds == pytest.approx(30 / 500e3 + 549 / 2e6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: can_frame_bits(9), "0-8"),
        (lambda: can_frame_bits(8, stuffing="some"), "stuffing"),  # type: ignore[arg-type]
        (lambda: canfd_length(65), "64"),
        (lambda: can_frame_seconds(8, 0), "bit rate"),
        (lambda: isotp_transfer_seconds(100, bitrate=500_000, frame_data=10), "frame length"),
        (lambda: isotp_transfer_seconds(100, bitrate=500_000, stmin_s=-1), "negative"),
        (lambda: ethernet_transfer_seconds(100, 100e6, mss=0), "MSS"),
        (lambda: flexray_transfer_seconds(100, 10e6, share=0), "share"),
    ],
)
def test_impossible_parameters_are_config_errors(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]


# --- ISO-TP ---------------------------------------------------------------------------

FRAME = can_frame_seconds(8, 500_000, stuffing="none")


def frames(n: int) -> float:
    return n * FRAME


@pytest.mark.parametrize(
    ("payload", "addressing", "expected"),
    [
        (7, "normal", frames(1)),  # single frame
        (8, "normal", frames(3)),  # FF (6) + FC + CF (2)
        (6, "extended", frames(1)),
        (7, "extended", frames(3)),  # FF (5) + FC + CF (2)
        (20, "normal", frames(4)),  # FF 6 + CF 7 + CF 7 + FC
        (4095, "normal", frames(1 + 1 + 585)),  # 4089 / 7 = 584.1 -> 585 CFs
        (4096, "normal", frames(1 + 1 + 585)),  # escape FF carries 2: 4094 / 7 -> 585
    ],
)
def test_isotp_frame_counts(payload: int, addressing: str, expected: float) -> None:
    seconds = isotp_transfer_seconds(
        payload,
        bitrate=500_000,
        addressing=addressing,  # type: ignore[arg-type]
        stuffing="none",
    )
    assert seconds == pytest.approx(expected)


def test_escape_first_frame_carries_four_bytes_less() -> None:
    # Above 4095 bytes the escape FF carries 2 bytes: 4097 = 2 + 585 x 7 fills 585 CFs
    # exactly, 4098 needs one more.
    same = isotp_transfer_seconds(4097, bitrate=500_000, stuffing="none")
    more = isotp_transfer_seconds(4098, bitrate=500_000, stuffing="none")
    assert same == pytest.approx(frames(587))
    assert more == pytest.approx(frames(588))


def test_block_size_adds_one_flow_control_per_block() -> None:
    plain = isotp_transfer_seconds(4095, bitrate=500_000, stuffing="none")
    blocks = isotp_transfer_seconds(4095, bitrate=500_000, block_size=8, stuffing="none")
    assert blocks - plain == pytest.approx(frames(math.ceil(585 / 8) - 1))


def test_stmin_separates_consecutive_frames_but_not_the_first_after_flow_control() -> None:
    plain = isotp_transfer_seconds(4095, bitrate=500_000, block_size=8, stuffing="none")
    paced = isotp_transfer_seconds(
        4095, bitrate=500_000, block_size=8, stmin_s=0.001, stuffing="none"
    )
    flow_controls = math.ceil(585 / 8)
    assert paced - plain == pytest.approx((585 - flow_controls) * 0.001)


def test_flow_control_turnaround_counts_once_per_flow_control() -> None:
    plain = isotp_transfer_seconds(4095, bitrate=500_000, block_size=16)
    slow = isotp_transfer_seconds(4095, bitrate=500_000, block_size=16, fc_turnaround_s=0.002)
    assert slow - plain == pytest.approx(math.ceil(585 / 16) * 0.002)


def test_canfd_single_frame_holds_62_bytes_with_normal_addressing() -> None:
    def count(payload: int, addressing: str) -> float:
        return isotp_transfer_seconds(
            payload,
            bitrate=500_000,
            frame_data=64,
            fd_data_bitrate=2_000_000,
            addressing=addressing,  # type: ignore[arg-type]
        )

    one = canfd_frame_seconds(64, 500_000, 2_000_000)
    # One byte more: a full first frame, the flow control and a last consecutive frame
    # padded to 8 bytes.
    segmented = one + 2 * canfd_frame_seconds(8, 500_000, 2_000_000)
    assert count(62, "normal") == pytest.approx(one)
    assert count(63, "normal") == pytest.approx(segmented)
    assert count(61, "extended") == pytest.approx(one)
    assert count(62, "extended") == pytest.approx(segmented)


def test_canfd_small_single_frame_is_padded_to_8_bytes() -> None:
    seconds = isotp_transfer_seconds(3, bitrate=500_000, fd_data_bitrate=2_000_000)
    assert seconds == pytest.approx(canfd_frame_seconds(8, 500_000, 2_000_000))


def test_empty_message_takes_no_time() -> None:
    assert isotp_transfer_seconds(0, bitrate=500_000) == 0.0
    assert ethernet_transfer_seconds(0, 100e6) == 0.0


@given(
    payload=st.integers(1, 20_000),
    frame_data=st.sampled_from([8, 12, 16, 32, 64]),
    addressing=st.sampled_from(["normal", "extended"]),
    block_size=st.integers(0, 32),
    stmin_s=st.sampled_from([0.0, 0.0005, 0.001, 0.01]),
    stuffing=st.sampled_from(["none", "typical", "worst"]),
)
def test_one_more_byte_never_takes_less_time(
    *,
    payload: int,
    frame_data: int,
    addressing: str,
    block_size: int,
    stmin_s: float,
    stuffing: str,
) -> None:
    params = {
        "bitrate": 500_000,
        "frame_data": frame_data,
        "fd_data_bitrate": 2_000_000 if frame_data > 8 else None,
        "addressing": addressing,
        "block_size": block_size,
        "stmin_s": stmin_s,
        "stuffing": stuffing,
    }
    shorter = isotp_transfer_seconds(payload, **params)  # type: ignore[arg-type]
    longer = isotp_transfer_seconds(payload + 1, **params)  # type: ignore[arg-type]
    assert 0 < shorter <= longer


# --- Ethernet, FlexRay, dispatch --------------------------------------------------------


def test_small_ethernet_segment_is_a_minimum_size_frame() -> None:
    # 8 preamble + 64 frame + 12 gap = 84 bytes even for a 2-byte UDS answer.
    assert ethernet_transfer_seconds(2, 100e6) == pytest.approx(84 * 8 / 100e6)


def test_flexray_is_a_fixed_share_of_its_raw_rate() -> None:
    assert 125_000 / flexray_transfer_seconds(125_000, 10e6) == pytest.approx(125e3)


@pytest.mark.parametrize(
    ("bus", "expected"),
    [
        (
            BusProfile(name="d-can", kind="can", bitrate=500_000),
            isotp_transfer_seconds(4095, bitrate=500_000),
        ),
        (
            BusProfile(name="pt-can", kind="canfd", bitrate=500_000, data_bitrate=2_000_000),
            isotp_transfer_seconds(4095, bitrate=500_000, frame_data=64, fd_data_bitrate=2_000_000),
        ),
        (
            BusProfile(name="enet", kind="ethernet", bitrate=100_000_000),
            ethernet_transfer_seconds(4095, 100e6),
        ),
        (
            BusProfile(name="flexray", kind="flexray", bitrate=10_000_000),
            flexray_transfer_seconds(4095, 10e6),
        ),
    ],
    ids=["can", "canfd", "ethernet", "flexray"],
)
def test_transfer_seconds_dispatches_on_the_bus_kind(bus: BusProfile, expected: float) -> None:
    assert transfer_seconds(bus, 4095) == pytest.approx(expected)


def test_transfer_seconds_passes_the_flow_control_parameters_on() -> None:
    bus = BusProfile(name="d-can", kind="can", bitrate=500_000)
    paced = transfer_seconds(bus, 4095, stmin_s=0.001, block_size=8, addressing="extended")
    expected = isotp_transfer_seconds(
        4095, bitrate=500_000, stmin_s=0.001, block_size=8, addressing="extended"
    )
    assert paced == pytest.approx(expected)


def test_ordering_figures_match_reality_ethernet_beats_fd_beats_can() -> None:
    can = transfer_seconds(BusProfile(name="a", kind="can", bitrate=500_000), 100_000)
    fd = transfer_seconds(
        BusProfile(name="b", kind="canfd", bitrate=500_000, data_bitrate=2_000_000), 100_000
    )
    flexray = transfer_seconds(BusProfile(name="c", kind="flexray", bitrate=10_000_000), 100_000)
    enet = transfer_seconds(BusProfile(name="d", kind="ethernet", bitrate=100_000_000), 100_000)
    assert enet < fd < flexray < can


# --- clock ---------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


def test_clock_counts_simulated_seconds_from_creation() -> None:
    real = FakeTime()
    clock = Clock(10.0, source=real)
    assert clock.now() == 0.0
    real.value += 1.5
    assert clock.now() == pytest.approx(15.0)
    assert clock.to_real(60.0) == pytest.approx(6.0)
    assert clock.to_sim(6.0) == pytest.approx(60.0)


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_clock_refuses_a_time_scale_that_is_not_positive(scale: float) -> None:
    with pytest.raises(ConfigError, match="time scale"):
        Clock(scale)


async def test_clock_sleeps_scaled_time_on_the_running_loop() -> None:
    clock = Clock(1000.0)
    await clock.sleep(5.0)  # 5 ms of real time
    assert clock.now() >= 5.0
    await clock.sleep_until(8.0)
    assert clock.now() >= 8.0
    await clock.sleep(-1.0)  # in the past: returns at once


def test_clock_made_outside_a_loop_uses_the_monotonic_clock() -> None:
    clock = Clock()
    assert 0.0 <= clock.now() < 1.0


# --- sharing a bus ----------------------------------------------------------------------


def test_scheduler_serves_transfers_first_come_first_served() -> None:
    bus = BusScheduler("d-can")
    assert bus.reserve(0.0, 1.0) == 1.0
    assert bus.reserve(0.5, 1.0) == 2.0  # waits for the first
    assert bus.reserve(5.0, 0.5) == 5.5  # idle bus: starts at once
    assert bus.busy_until == 5.5
    assert bus.busy_seconds == 2.5
    assert bus.transfers == 3


def test_scheduler_utilisation_counts_only_time_already_spent() -> None:
    bus = BusScheduler()
    bus.reserve(0.0, 2.0)
    bus.reserve(6.0, 4.0)
    assert bus.utilisation(0.0) == 0.0
    assert bus.utilisation(8.0) == pytest.approx(4.0 / 8.0)  # 2 s + 2 of the 4 s so far
    assert bus.utilisation(10.0) == pytest.approx(0.6)


def test_scheduler_refuses_negative_durations() -> None:
    with pytest.raises(ValueError, match="cannot take"):
        BusScheduler().reserve(0.0, -1.0)


def test_fifo_ends_when_frame_interleaving_ends() -> None:
    # Three ECUs start a 4 KiB download at the same moment. On a real bus their frames
    # interleave by arbitration (here: round robin); the bus is never idle, so the last
    # transfer ends at the sum of all frame times -- exactly when FIFO booking ends.
    frame = can_frame_seconds(8, 500_000)
    counts = [587, 587, 587]
    interleaved_end = 0.0
    pending = list(counts)
    while any(pending):
        for i, left in enumerate(pending):
            if left:
                pending[i] -= 1
                interleaved_end += frame
    bus = BusScheduler()
    ends = [bus.reserve(0.0, n * frame) for n in counts]
    assert max(ends) == pytest.approx(interleaved_end)
    assert bus.utilisation(max(ends)) == pytest.approx(1.0)
