"""The main job in a real browser (headless Debian chromium): log in, reserve the VCI,
identify, open the plan, program, watch every bar reach 100 %, find the session in the
vehicle's history with its SVT before and after. Screenshots go to build/screenshots/."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import url_of
from tests.web.conftest import PASSWORD, StartWorkstation

from ecuworks.platform.interfaces import add_interface
from ecuworks.platform.users import Role

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
TIME_SCALE = 1000.0


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    # Not a skip: 'make test' installs Debian chromium, and CI must not pass without it.
    assert shutil.which(CHROMIUM), "Debian chromium is missing: run 'make test' (it installs it)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


async def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def test_a_technician_programs_a_vehicle_in_the_browser(
    browser: Browser,
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    pdata_home: Path,
) -> None:
    sim = await start_simulator("f-series", time_scale=TIME_SCALE)
    sim.set_battery(volts=None, charger=True)
    ws = await start_workstation(home=pdata_home, time_scale=TIME_SCALE)
    add_interface(ws.db, "sim", url_of(sim, "f-series"), f"http://127.0.0.1:{sim.ports['control']}")
    ws.add_user("ada", Role.TECHNICIAN)
    page = await browser.new_page()
    page.set_default_timeout(30_000)

    await page.goto(f"{ws.url}/login")
    await page.get_by_label("User name").fill("ada")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    await _shot(page, "launcher")

    await page.get_by_role("link", name="Interfaces").first.click()
    await page.get_by_role("button", name="Reserve sim").click()
    await expect(page.get_by_role("button", name="Release sim")).to_be_visible()

    await page.get_by_role("navigation").get_by_role("link", name="Programming").click()
    await page.get_by_label("Interface").select_option("sim")
    await page.get_by_role("button", name="Identify").click()
    await expect(page.get_by_role("heading", name=re.compile(r"^Vehicle "))).to_be_visible()
    vin = (await page.get_by_role("heading", level=1).inner_text()).removeprefix("Vehicle ")

    await page.get_by_role("button", name="Make plan").click()
    await expect(page.get_by_role("heading", name=f"Measures plan for {vin}")).to_be_visible()
    await _shot(page, "plan")

    await page.get_by_role("button", name="Start programming").click()
    await expect(page.get_by_role("heading", name=re.compile("^Programming "))).to_be_visible()
    bars = page.locator("table.ecus progress")
    await expect(bars.first).to_be_visible()
    await _shot(page, "progress")
    await expect(page.get_by_text("Outcome: done")).to_be_visible(timeout=120_000)
    count = await bars.count()
    assert count > 1
    for index in range(count):
        bar = bars.nth(index)
        await expect(bar).to_have_attribute("value", await bar.get_attribute("max") or "?")
    await expect(page.get_by_role("progressbar", name="ZGW")).to_be_visible()
    await _shot(page, "progress-done")

    await page.get_by_role("link", name="The history record of this session").click()
    await expect(page.get_by_role("heading", name="SVT before and after")).to_be_visible()
    await expect(page.get_by_role("cell", name="changed", exact=True).first).to_be_visible()
    await page.goto(f"{ws.url}/history/{vin}")
    program = page.get_by_role("row").filter(has_text="program to")
    await expect(program).to_have_count(1)
    await expect(program).to_contain_text("done")
