"""build_plan against the demo P-Data, with identifications of the simulated vehicles."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tests.plan.vehicles import factory_ident, older, with_ecu

from ecuworks.errors import ConfigError
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.source import open_pdata
from ecuworks.plan import CATEGORY_ORDER, Category, Plan, PlanFilter, build_plan
from ecuworks.vehicle.identify import EcuMode
from ecuworks.wire.sgbm import ProcessClass, SgbmId

DME, HU, GATEWAY, NOBODY = 0x12, 0x63, 0x10, 0x7E


@pytest.fixture
def catalog(pdata_home: Path) -> Catalog:
    return open_pdata(pdata_home).catalog


def unit_of(ident_svk: tuple[SgbmId, ...], cls: ProcessClass) -> SgbmId:
    return next(u for u in ident_svk if u.process_class is cls)


def test_a_vehicle_at_its_target_needs_no_action_only_the_final_check(catalog: Catalog) -> None:
    ident = factory_ident()
    assert ident.ilevel is not None
    plan = build_plan(ident, catalog, target=str(ident.ilevel.current))
    assert plan.actions == ()
    assert [s.name for s in plan.steps] == ["final-check"]
    assert plan.target_svt == plan.actual_svt


def test_units_at_target_are_skipped_and_the_others_explained(catalog: Catalog) -> None:
    ident = factory_ident()
    plan = build_plan(ident, catalog)
    installed = {str(u) for e in ident.ecus for u in e.svk}
    assert plan.actions
    assert plan.target_ilevel == str(catalog.latest("F030"))
    for action in plan.actions:
        if action.category is not Category.CD_DEPLOY or action.unit != action.replaces:
            assert action.unit not in installed, action
        if action.replaces and action.replaces != action.unit:
            old, new = SgbmId.parse(action.replaces), SgbmId.parse(str(action.unit))
            assert old.same_unit(new)
            assert f"→ {new.main:03d}.{new.sub:03d}.{new.patch:03d}" in action.reason
            assert plan.target_ilevel in action.reason
    # every unit the target SVT has and the ECU has too is not touched
    touched = {a.unit for a in plan.actions}
    for address, units in plan.target_svt.items():
        for unit in set(units) & set(plan.actual_svt.get(address, ())):
            if not unit.startswith("CAFD"):
                assert unit not in touched


def test_an_old_bootloader_is_a_blflash_before_the_software(catalog: Catalog) -> None:
    ident = factory_ident()
    dme = ident.ecu(DME)
    btld = unit_of(dme.svk, ProcessClass.BTLD)
    svk = tuple(older(u) if u == btld else u for u in dme.svk)
    plan = build_plan(with_ecu(ident, DME, svk=svk), catalog)
    actions = plan.actions_of(DME)
    categories = [a.category for a in actions]
    assert categories[0] is Category.BL_FLASH
    assert categories == sorted(categories, key=CATEGORY_ORDER.index)
    assert {Category.SW_DEPLOY, Category.CD_DEPLOY} <= set(categories)
    blflash = actions[0]
    assert blflash.replaces == str(older(btld))
    assert blflash.bytes > 0
    assert blflash.seconds > 0


def test_new_software_brings_coding_even_with_the_cafd_unchanged(catalog: Catalog) -> None:
    plan = build_plan(factory_ident(), catalog)
    for address in {a.ecu for a in plan.actions if a.category is Category.SW_DEPLOY}:
        coding = [a for a in plan.actions_of(address) if a.category is Category.CD_DEPLOY]
        assert coding, f"0x{address:02X} gets software but no coding"
        for action in coding:
            if action.unit == action.replaces:
                assert "coded again after new software" in action.reason


def test_unknown_unreleased_and_silent_ecus_are_reported_never_guessed(catalog: Catalog) -> None:
    ident = factory_ident()
    hu = ident.ecu(HU)
    hwel = unit_of(hu.svk, ProcessClass.HWEL)
    odd_hw = replace(hwel, main=99)
    ident = with_ecu(ident, NOBODY, svk=(SgbmId.parse("HWEL-00F37E10-001.000.000"),))
    ident = with_ecu(ident, HU, svk=tuple(odd_hw if u == hwel else u for u in hu.svk))
    ident = with_ecu(ident, DME, state=EcuMode.NOT_ANSWERING, svk=(), problem="silent")
    plan = build_plan(ident, catalog)
    why = {u.ecu: u.why for u in plan.unknown}
    assert set(why) == {NOBODY, HU, DME}
    assert "no ECU at 0x7E" in why[NOBODY]
    assert str(odd_hw) in why[HU]
    assert "not released" in why[HU]
    assert "not answering" in why[DME]
    assert not {a.ecu for a in plan.actions} & {NOBODY, HU, DME}
    assert plan.target_svt[HU] == plan.actual_svt[HU]
    assert DME not in plan.target_svt


def test_an_ecu_in_its_bootloader_gets_its_software_again(catalog: Catalog) -> None:
    ident = factory_ident()
    assert ident.ilevel is not None
    ident = with_ecu(ident, DME, state=EcuMode.BOOTLOADER)
    plan = build_plan(ident, catalog, target=str(ident.ilevel.current))
    actions = plan.actions_of(DME)
    assert {a.ecu for a in plan.actions} == {DME}
    software = [a for a in actions if a.category is Category.SW_DEPLOY]
    flashable = [
        u
        for u in ident.ecu(DME).svk
        if u.process_class not in (ProcessClass.HWEL, ProcessClass.CAFD, ProcessClass.BTLD)
    ]
    assert sorted(a.unit for a in software) == sorted(str(u) for u in flashable)
    for action in software:
        assert action.unit == action.replaces
        assert "ECU is in its bootloader: its software is incomplete" in action.reason
    assert any(a.category is Category.CD_DEPLOY for a in actions)


def test_a_must_not_rule_drops_actions_and_says_so(catalog: Catalog) -> None:
    ident = factory_ident()
    rules = PlanFilter.parse(["must-not:SwDeploy@0x63", "must:CdDeploy@0x12"])
    plan = build_plan(ident, catalog, plan_filter=rules)
    assert not [a for a in plan.actions if a.ecu == HU and a.category is Category.SW_DEPLOY]
    dropped = [a for a in plan.filtered if a.ecu == HU and a.category is Category.SW_DEPLOY]
    assert dropped
    assert all("must-not:SwDeploy@0x63" in a.reason for a in dropped)
    for action in dropped:  # the head unit keeps what it has
        assert action.replaces in plan.target_svt[HU]
        assert action.unit not in plan.target_svt[HU]
    assert plan.filter == rules.to_json()
    everything = build_plan(ident, catalog)
    assert len(plan.actions) < len(everything.actions)


def test_an_unmet_must_rule_fails_naming_it(catalog: Catalog) -> None:
    ident = factory_ident()
    with pytest.raises(ConfigError, match=r"must:IdBackup.*ecuworks replace"):
        build_plan(ident, catalog, plan_filter=PlanFilter.parse(["must:IdBackup"]))
    assert ident.ilevel is not None
    at_target = str(ident.ilevel.current)
    with pytest.raises(ConfigError, match=r"must:SwDeploy@0x12.*DME \(0x12\)"):
        build_plan(
            ident, catalog, target=at_target, plan_filter=PlanFilter.parse(["must:SwDeploy@0x12"])
        )


@pytest.mark.parametrize(
    "text", ["must-not", "maybe:BlFlash", "must:Coffee", "must:BlFlash@zz", "must:BlFlash@0x100"]
)
def test_a_bad_filter_rule_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="filter"):
        PlanFilter.parse([text])


def test_contradicting_rules_are_refused() -> None:
    with pytest.raises(ConfigError, match="contradict"):
        PlanFilter.parse(["must:CdDeploy@0x12", "must-not:cddeploy@18"])


def test_the_plan_survives_its_json(catalog: Catalog) -> None:
    rules = PlanFilter.parse(["must-not:BlFlash"])
    plan = build_plan(factory_ident("g-series"), catalog, plan_filter=rules)
    assert Plan.from_json(plan.to_json()) == plan
    assert Plan.from_bytes(plan.to_bytes()) == plan
    assert PlanFilter.from_json(plan.filter) == rules


@pytest.mark.parametrize("vehicle", ["f-series", "g-series", "e-series"])
def test_the_estimate_is_never_below_the_lower_bound(catalog: Catalog, vehicle: str) -> None:
    plan = build_plan(factory_ident(vehicle), catalog)
    assert plan.lower_bound_s == max(plan.lower_bound_terms.values())
    assert plan.estimate_s >= plan.lower_bound_s > 0
    assert plan.critical_path


def test_the_gateway_goes_first_and_alone(catalog: Catalog) -> None:
    plan = build_plan(factory_ident("g-series"), catalog)
    slots = {s.ecu: s for s in plan.schedule}
    gateway = slots[GATEWAY]
    assert gateway.start_s == 0.0
    assert plan.ecus[0] == GATEWAY
    for address, slot in slots.items():
        if address != GATEWAY:
            assert slot.after == (GATEWAY,)
            assert slot.start_s >= gateway.end_s
    assert plan.critical_path[0].startswith("ZGW (0x10)")
    assert plan.estimate_s > max(s.end_s for s in plan.schedule)  # plus the steps


def test_steps_surround_the_actions(catalog: Catalog) -> None:
    plan = build_plan(factory_ident(), catalog)
    assert [s.name for s in plan.steps] == [
        "energy-mode-flash",
        "dtc-setting-off",
        "communication-off",
        "communication-on",
        "dtc-setting-on",
        "energy-mode-normal",
        "write-ilevel",
        "write-vo",
        "clear-dtcs",
        "read-dtcs",
        "final-check",
    ]
    assert all(s.reason for s in plan.steps)
    assert set(plan.target_svt) == set(plan.actual_svt)


def test_targets_the_vehicle_cannot_take_are_refused(catalog: Catalog) -> None:
    ident = factory_ident()
    assert ident.ilevel is not None
    with pytest.raises(ConfigError, match="downgrade refused"):
        build_plan(ident, catalog, target=str(ident.ilevel.last))
    with pytest.raises(ConfigError, match="not an I-level"):
        build_plan(ident, catalog, target="F030-30-01-100")
    with pytest.raises(ConfigError, match="series G020"):
        build_plan(ident, catalog, target="G020-24-11-570")
    with pytest.raises(ConfigError, match=r"^target: .*, or 'latest'$"):
        build_plan(ident, catalog, target="soon")
    with pytest.raises(ConfigError, match="no I-level"):
        build_plan(replace(ident, ilevel=None), catalog)
