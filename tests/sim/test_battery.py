"""The simulated 12 V supply: what the technician's tool would see with and without charger."""

from __future__ import annotations

import doctest

import pytest

from ecuworks.errors import ConfigError
from ecuworks.sim import battery as battery_module
from ecuworks.sim.battery import (
    BROWNOUT_VOLTS,
    CHARGER_AMPS,
    ERROR_LOW_VOLTS,
    PROGRAMMING_MIN_VOLTS,
    WARN_HIGH_VOLTS,
    WARN_LOW_VOLTS,
    Battery,
    load_amps,
)


def test_module_doc_examples_hold() -> None:
    assert doctest.testmod(battery_module).failed == 0


@pytest.mark.parametrize("programming", [0, 1, 4, 8])
def test_the_charger_holds_the_voltage_while_up_to_eight_ecus_program(programming: int) -> None:
    # DOMAIN.md: commercial tools flash up to 8 ECUs at once, and the voltage must not
    # drop below 13.0 V while programming; the tool warns above 14.85 V.
    supply = Battery(volts=12.4, charger=True)
    volts = supply.voltage(load_amps(programming))
    assert PROGRAMMING_MIN_VOLTS <= 13.8 <= volts <= 14.2 < WARN_HIGH_VOLTS


def test_a_charger_overloaded_beyond_its_rating_lets_the_voltage_fall() -> None:
    supply = Battery(volts=12.6, charger=True)
    assert supply.voltage(CHARGER_AMPS) == pytest.approx(13.8)
    assert supply.voltage(CHARGER_AMPS + 30) == pytest.approx(12.6 - 0.010 * 30)
    assert supply.voltage(CHARGER_AMPS + 30) < PROGRAMMING_MIN_VOLTS


def test_without_charger_every_programming_ecu_pulls_the_voltage_down() -> None:
    supply = Battery(volts=12.9, charger=False)  # freshly charged, resting
    volts = [supply.voltage(load_amps(n)) for n in range(9)]
    assert volts == sorted(volts, reverse=True)
    assert volts[0] > WARN_LOW_VOLTS  # ignition on, nothing programming: fine
    assert volts[8] < WARN_LOW_VOLTS  # eight at once: the tool warns
    assert volts[8] > ERROR_LOW_VOLTS


def test_a_weak_battery_without_charger_warns_before_anything_programs() -> None:
    assert Battery(volts=12.4).voltage(load_amps(0)) < WARN_LOW_VOLTS


def test_a_scripted_sag_holds_the_voltage_down_for_its_duration_only() -> None:
    supply = Battery(volts=12.6, charger=True)
    load = load_amps(2)
    normal = supply.voltage_at(0.0, load)
    supply.sag(at=10.0, volts=9.0, duration=0.5)
    assert supply.voltage_at(9.99, load) == normal
    assert supply.voltage_at(10.0, load) == 9.0
    assert supply.voltage_at(10.49, load) == 9.0
    assert supply.voltage_at(10.5, load) == normal
    assert supply.next_change(0.0) == 10.0
    assert supply.next_change(10.0) == 10.5
    assert supply.next_change(10.5) is None


def test_a_sag_above_the_present_voltage_changes_nothing() -> None:
    supply = Battery(volts=11.0)
    supply.sag(at=0.0, volts=12.0, duration=1.0)
    assert supply.voltage_at(0.5, 0.0) == 11.0


def test_overlapping_sags_take_the_deeper_one() -> None:
    supply = Battery(volts=12.6, charger=True)
    supply.sag(at=0.0, volts=11.0, duration=2.0)
    supply.sag(at=1.0, volts=9.5, duration=0.5)
    assert supply.voltage_at(0.5, 0.0) == 11.0
    assert supply.voltage_at(1.2, 0.0) == 9.5
    assert supply.voltage_at(1.8, 0.0) == 11.0


def test_brownout_below_about_ten_volts_resets_the_ecus() -> None:
    supply = Battery(volts=12.6, charger=True)
    supply.sag(at=5.0, volts=BROWNOUT_VOLTS - 0.5, duration=0.2)
    assert not supply.browned_out(4.9, load_amps(1))
    assert supply.browned_out(5.1, load_amps(1))
    assert not supply.browned_out(5.2, load_amps(1))
    # A deep enough battery brownouts without any script once the load is large.
    assert Battery(volts=10.3).browned_out(0.0, load_amps(4))


def test_set_changes_voltage_and_charger_as_the_control_api_does() -> None:
    supply = Battery()
    supply.set(volts=12.1)
    assert (supply.volts, supply.charger) == (12.1, False)
    supply.set(charger=True)
    assert (supply.volts, supply.charger) == (12.1, True)


def test_past_sags_can_be_forgotten() -> None:
    supply = Battery()
    supply.sag(at=0.0, volts=9.0, duration=1.0)
    later = supply.sag(at=5.0, volts=9.0, duration=1.0)
    supply.clear_sags(before=2.0)
    assert supply.sags == (later,)
    supply.clear_sags()
    assert not supply.sags


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Battery(volts=-1.0), "battery voltage"),
        (lambda: Battery(volts=float("nan")), "battery voltage"),
        (lambda: Battery(resistance=-0.1), "resistance"),
        (lambda: Battery(charger_amps=0.0), "charger rating"),
        (lambda: Battery().sag(at=0.0, volts=9.0, duration=0.0), "positive number of seconds"),
        (lambda: Battery().sag(at=0.0, volts=-9.0, duration=1.0), "sag voltage"),
        (lambda: Battery().set(volts=float("inf")), "battery voltage"),
    ],
)
def test_impossible_settings_are_config_errors(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]
