"""The simulator's HTTP JSON control API (DESIGN.md, "Simulator control API").

Tests, benchmarks and a person at a terminal steer the simulated vehicle through it: read
its state, set the battery, inject faults, swap or add ECUs, and see or take the VCI's
reservation. ``create_app`` builds the FastAPI app over a :class:`ControlTarget` (the
``Simulator``); ``serve_control`` serves it with uvicorn inside the running event loop, on
loopback only.

Every handler is ``async def`` and never awaits, so each request runs on the event loop
as one step, like the rest of the simulator: two requests never interleave inside the
vehicle's state (that is what makes "two workstations reserve at once: exactly one wins"
true). pydantic models live at this edge only. Every error answer is JSON
``{"error": "<what happened and what to do>"}``; a malformed request is a 4xx, never a 500.

Routes::

    GET    /health                      {"status": "ok"}
    GET    /state                       the vehicle, DESIGN.md's /state JSON
    POST   /battery                     {"volts": 12.1, "charger": false}, either key optional
    POST   /faults                      one fault object (sim/faults.py) -> 201, stored fault
    GET    /faults                      {"faults": [...]}
    DELETE /faults                      {"cleared": n}
    DELETE /faults/{id}                 {"removed": id}, 404 if unknown
    POST   /ecus/{addr}/replace         blank ECU at addr (decimal or 0x-hex), 404 if none
    POST   /ecus/{addr}/dtcs            {"dtcs": [0x5E2012, "0x801C20"], "status": 9} -> 201,
                                        the ECU's fault memory; 404 if no ECU is there
    POST   /ecus                        install an ECU (an [[ecus]] table as JSON) -> 201
    GET    /vci                         firmware, VIN, battery volts, owner, lease left
    POST   /vci/reservation             {"owner", "lease_s"} -> 200, or 409 with the owner
    DELETE /vci/reservation             {"owner"} -> 200 {"released": bool}, or 409
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Protocol

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecuworks.embedded_http import RunningServer, serve_asgi
from ecuworks.errors import ConfigError
from ecuworks.sim.faults import MAX_VOLTS, Faults, parse_fault
from ecuworks.sim.state import DEFAULT_DTC_STATUS, MAX_DTCS
from ecuworks.sim.vci import MAX_LEASE_S, MAX_OWNER_LENGTH, Vci, VciBusy

__all__ = [
    "ControlServer",
    "ControlTarget",
    "create_app",
    "parse_address",
    "parse_dtc",
    "serve_control",
]

_ADDRESS: Final = re.compile(r"(?:0[xX][0-9a-fA-F]{1,2}|[0-9]{1,3})")
# A DTC as text: hex, with or without 0x (``/state`` writes them as ``"5E2012"``). Up to 8
# digits so that a code one digit too long is told "not 3 bytes", not "not hex".
_DTC_TEXT: Final = re.compile(r"(?:0[xX])?[0-9a-fA-F]{1,8}")


class ControlTarget(Protocol):
    """What the control API steers: the ``Simulator`` implements it.

    Every method is called on the event loop, one request at a time, and must not block.
    ``faults`` and ``vci`` are read-only properties here, so plain attributes satisfy them.
    """

    @property
    def faults(self) -> Faults:
        """The fault registry the gateway and servers consult."""
        ...

    @property
    def vci(self) -> Vci:
        """The vehicle interface and its reservation."""
        ...

    def now(self) -> float:
        """Simulated seconds since start: when a fault is added (sag times start here)."""
        ...

    def state_json(self) -> dict[str, Any]:
        """The ``/state`` JSON of DESIGN.md."""
        ...

    def set_battery(self, volts: float | None, charger: bool | None) -> dict[str, Any]:
        """Set the battery's resting voltage and/or the charger; None leaves it as is.

        Returns:
            The battery as ``/state`` shows it, e.g. ``{"volts": 12.1, "charger": false}``.

        Raises:
            ConfigError: the value cannot be applied (answered 422).
        """
        ...

    def replace_ecu(self, address: int) -> dict[str, Any]:
        """Swap the ECU at ``address`` for a blank one of the same hardware.

        Returns:
            The new ECU as ``/state`` shows it.

        Raises:
            KeyError: no ECU has that address (answered 404).
        """
        ...

    def install_ecu(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Install a new ECU, given in the keys of a profile's ``[[ecus]]`` table.

        Returns:
            The new ECU as ``/state`` shows it.

        Raises:
            ConfigError: the definition is invalid or its address is taken (answered 422
                with the message).
        """
        ...

    def store_dtcs(self, address: int, codes: list[int], status: int) -> dict[str, Any]:
        """Store faults in one ECU's fault memory, as if it had detected them.

        Returns:
            ``{"address", "name", "dtcs", "dtc_status"}``, the last two as ``/state``
            shows them.

        Raises:
            KeyError: no ECU has that address (answered 404).
            ConfigError: a code or the status cannot be stored (answered 422).
        """
        ...


# --- request bodies (pydantic at the HTTP edge only, STYLE.md) --------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class BatteryRequest(_Strict):
    """``POST /battery``: either key may be left out."""

    volts: float | None = Field(default=None, ge=0.0, le=MAX_VOLTS, allow_inf_nan=False)
    charger: bool | None = None


class ReservationRequest(_Strict):
    """``POST /vci/reservation``: reserve or renew."""

    owner: str = Field(min_length=1, max_length=MAX_OWNER_LENGTH)
    lease_s: float = Field(gt=0.0, le=MAX_LEASE_S, allow_inf_nan=False)


class ReleaseRequest(_Strict):
    """``DELETE /vci/reservation``."""

    owner: str = Field(min_length=1, max_length=MAX_OWNER_LENGTH)


class DtcRequest(_Strict):
    """``POST /ecus/{addr}/dtcs``: codes as integers or hex text, one status for them all."""

    dtcs: list[int | str] = Field(min_length=1, max_length=MAX_DTCS)
    status: int = Field(default=DEFAULT_DTC_STATUS, ge=1, le=0xFF)


# --- errors as JSON ------------------------------------------------------------------------


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _describe_validation(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "not JSON")
            return f"the request body is not valid JSON ({reason}); send one JSON object"
        where = ".".join(str(part) for part in err.get("loc", ())[1:]) or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _error(422, _describe_validation(exc))


async def _on_config_error(_: Request, exc: Exception) -> JSONResponse:
    return _error(422, str(exc))


async def _on_vci_busy(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VciBusy)
    return _error(409, str(exc), owner=exc.owner, expires_in=exc.expires_in)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}; see the list in /docs"
    elif exc.status_code == 405:
        message = f"{request.url.path} does not take {request.method}"
    else:
        message = str(exc.detail)
    return _error(exc.status_code, message)


async def _on_crash(_: Request, exc: Exception) -> JSONResponse:
    return _error(500, f"the simulator failed: {type(exc).__name__}: {exc}; see its log")


def parse_address(text: str) -> int:
    """An ECU's 1-byte diagnostic address from a path: decimal (``18``) or hex (``0x12``).

    Raises:
        ConfigError: not such a number, or above 0xFF.
    """
    if (
        not _ADDRESS.fullmatch(text)
        or (address := int(text, 0 if "x" in text.lower() else 10)) > 0xFF
    ):
        raise ConfigError(
            f"ECU address {text!r} is not a 1-byte address: write it decimal (18) or hex (0x12)"
        )
    return address


def parse_dtc(value: int | str) -> int:
    """A DTC from a request: an integer, or hex text with or without ``0x``.

    The range (3 bytes) is the ECU's to check.

    Raises:
        ConfigError: text that is not hex.
    """
    if isinstance(value, int):
        return value
    if not _DTC_TEXT.fullmatch(value):
        raise ConfigError(
            f"DTC {value!r} is not a fault code: give a number or hex text such as "
            '"0x5E2012" or "5E2012"'
        )
    return int(value, 16)


# --- the app ------------------------------------------------------------------------------


def create_app(
    vehicle: ControlTarget, *, vci_clock: Callable[[], float] = time.monotonic
) -> FastAPI:
    """Build the control API over one simulated vehicle.

    Args:
        vehicle: what the API steers.
        vci_clock: the clock of the VCI's reservation leases, in seconds. Real time by
            default, not the simulated clock: the workstations that renew leases run on
            real time, and a time-scaled lease would run out under them.

    Returns:
        The FastAPI app; serve it with ``serve_control``.
    """
    app = FastAPI(
        title="ecuworks simulator control API",
        summary="Steer the simulated vehicle: state, battery, faults, ECUs, VCI.",
    )
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(ConfigError, _on_config_error)
    app.add_exception_handler(VciBusy, _on_vci_busy)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_crash)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/state")
    async def state() -> dict[str, Any]:
        return vehicle.state_json()

    @app.post("/battery")
    async def battery(body: BatteryRequest) -> dict[str, Any]:
        if body.volts is None and body.charger is None:
            raise ConfigError('give "volts" (0-30), "charger" (true/false) or both')
        return vehicle.set_battery(body.volts, body.charger)

    @app.post("/faults", status_code=201)
    async def add_fault(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return vehicle.faults.add(parse_fault(body), vehicle.now())

    @app.get("/faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": vehicle.faults.list()}

    @app.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        count = len(vehicle.faults.list())
        vehicle.faults.clear()
        return {"cleared": count}

    @app.delete("/faults/{fault_id}", response_model=None)
    async def remove_fault(fault_id: int) -> dict[str, Any] | JSONResponse:
        if not vehicle.faults.remove(fault_id):
            return _error(404, f"no fault {fault_id} is in force; GET /faults lists them")
        return {"removed": fault_id}

    @app.post("/ecus/{addr}/replace", response_model=None)
    async def replace_ecu(addr: str) -> dict[str, Any] | JSONResponse:
        address = parse_address(addr)
        try:
            return vehicle.replace_ecu(address)
        except KeyError:
            return _error(
                404, f"the vehicle has no ECU at 0x{address:02X}; GET /state lists its ECUs"
            )

    @app.post("/ecus/{addr}/dtcs", status_code=201, response_model=None)
    async def store_dtcs(addr: str, body: DtcRequest) -> dict[str, Any] | JSONResponse:
        address = parse_address(addr)
        codes = [parse_dtc(value) for value in body.dtcs]
        try:
            return vehicle.store_dtcs(address, codes, body.status)
        except KeyError:
            return _error(
                404, f"the vehicle has no ECU at 0x{address:02X}; GET /state lists its ECUs"
            )

    @app.post("/ecus", status_code=201)
    async def install_ecu(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return vehicle.install_ecu(body)

    @app.get("/vci")
    async def vci_info() -> dict[str, Any]:
        return vehicle.vci.info(vci_clock())

    @app.post("/vci/reservation")
    async def reserve(body: ReservationRequest) -> dict[str, Any]:
        now = vci_clock()
        return vehicle.vci.reserve(body.owner, body.lease_s, now).to_json(now)

    @app.delete("/vci/reservation")
    async def release(body: ReleaseRequest) -> dict[str, Any]:
        return {"released": vehicle.vci.release(body.owner, vci_clock())}

    return app


# --- serving in-process -------------------------------------------------------------------

ControlServer = RunningServer
"""A running control API (``.port``, ``await .close()``)."""


async def serve_control(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> ControlServer:
    """Serve the control API with uvicorn in the running event loop (loopback only).

    The port (an ephemeral one for ``port=0``) is known at once; the call returns when
    uvicorn accepts requests. See :func:`ecuworks.embedded_http.serve_asgi`.

    Raises:
        ConfigError: the host is not loopback or the port cannot be bound.
        EcuworksError: uvicorn did not start.
    """
    return await serve_asgi(app, host, port, what="the control API", option="--control-port")
