"""The backend's JSON API (``/api/v1``): history ingest and reading, chain verification,
enabling codes, reports.

Ingest (``POST /api/v1/events``), what a workstation's sync sends::

    {"events": [event, ...]}            at most 500; event = history.event_of(record)

and the answer (200 whenever the batch was read, whatever became of each event)::

    {"accepted": [event_id, ...],        stored now
     "duplicates": [event_id, ...],      stored before: resending is always safe
     "rejected": [{"event_id", "index", "reason", "retry"}, ...]}

A rejected event says why; for a gap the reason names the missing seq and ``retry`` is
true: the sender resends that chain in order from there (:mod:`ecuworks.backend.ingest`).
400: the body is no such JSON object; 401: no or a revoked token; 403: not a workstation;
413: too many events.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ecuworks.backend.accounts import Caller
from ecuworks.backend.auth import caller, database, person, scope
from ecuworks.backend.chains import list_events, verify_chains
from ecuworks.backend.fsc import FscIssuer
from ecuworks.backend.ingest import Answer, batch_schema, ingest
from ecuworks.backend.issuing import issue_fsc
from ecuworks.backend.reports import central_report
from ecuworks.errors import AccessDenied, ConfigError
from ecuworks.web.params import MAX_ROW_ID
from ecuworks.web.responses import responses

__all__ = ["MAX_BODY_BYTES", "parse_moment", "router"]

MAX_BODY_BYTES = 32 * 1024 * 1024
router = APIRouter(prefix="/api/v1")
Who = Annotated[Caller, Depends(caller)]


def _reject_constant(name: str) -> None:
    raise ConfigError(f"the body holds {name}, which JSON does not allow")


def _events_of(body: bytes) -> list[object]:
    """The ``events`` list of an ingest body.

    Raises:
        ConfigError: not JSON, or no ``events`` list.
    """
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise ConfigError(f"the body is no JSON ({error})") from error
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        raise ConfigError('the body is {"events": [event, ...]}')
    return events


def _ingest(request: Request, who: Caller, body: bytes) -> Answer:
    return ingest(database(request), who, _events_of(body))


@router.post(
    "/events",
    responses=responses(400, 403, 413),
    # The body is read raw (a batch of 500 events is parsed once, not by pydantic); its
    # shape is still the API's, so the schema says it.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": batch_schema()}},
        }
    },
)
async def post_events(request: Request, who: Who) -> dict[str, Any]:
    """Store a batch of history events; see the module docstring for the answer."""
    if not who.is_workstation:  # refuse before reading a body that will not be stored
        raise AccessDenied("only a workstation sends history events", status=403)
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_BODY_BYTES:
        raise AccessDenied(f"the body is larger than {MAX_BODY_BYTES} bytes", status=413)
    body = await request.body()
    return (await run_in_threadpool(_ingest, request, who, body)).to_json()


@router.get("/events", responses=responses(400, 403))
def get_events(
    request: Request,
    who: Who,
    *,
    workshop: str | None = None,
    vin: str | None = None,
    workstation: str | None = None,
    after: Annotated[
        int, Query(ge=0, le=MAX_ROW_ID, description="the cursor 'next' of the page before")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> dict[str, Any]:
    """Stored events of the caller's workshop (an admin: any), in the order received."""
    db = database(request)
    workshop_id, _ = scope(db, who, workshop)
    events, cursor = list_events(
        db, workshop_id=workshop_id, vin=vin, workstation=workstation, after=after, limit=limit
    )
    return {"events": events, "next": cursor}


@router.get("/chains/verify", responses=responses(400, 403))
def get_verify(
    request: Request,
    who: Who,
    *,
    workshop: str | None = None,
    vin: str | None = None,
    workstation: str | None = None,
) -> dict[str, Any]:
    """Recompute the stored chains of the caller's workshop (an admin: any or all)."""
    db = database(request)
    workshop_id, _ = scope(db, who, workshop)
    chains, events, breaks = verify_chains(
        db, workshop_id=workshop_id, vin=vin, workstation=workstation
    )
    return {
        "chains": chains,
        "events": events,
        "ok": not breaks,
        "breaks": [
            {"workstation": b.workstation, "vin": b.vin, "seq": b.seq, "why": b.why} for b in breaks
        ],
    }


class FscRequest(BaseModel):
    """``POST /api/v1/fsc``: which vehicle, application and upgrade index."""

    vin: str = Field(min_length=17, max_length=17)
    app_id: int = Field(ge=0, le=0xFFFF)
    upgrade_index: int = Field(ge=0, le=0xFFFF)


@router.post("/fsc", responses=responses(400, 403))
def post_fsc(request: Request, who: Who, wanted: FscRequest) -> dict[str, Any]:
    """Issue an enabling code to a workstation whose workshop is granted the VIN and app.

    Answers ``{"fsc": base64 of the 93-byte record, "public_key": issuer key hex}``.
    """
    issuer: FscIssuer = request.app.state.issuer
    record = issue_fsc(
        database(request),
        issuer,
        who,
        vin=wanted.vin,
        app_id=wanted.app_id,
        upgrade_index=wanted.upgrade_index,
    )
    return {"fsc": base64.b64encode(record).decode(), "public_key": issuer.public_key_hex}


@router.get("/fsc/public-key")
def get_public_key(request: Request, who: Who) -> dict[str, str]:
    """The issuer's Ed25519 public key, which the vehicles must trust."""
    issuer: FscIssuer = request.app.state.issuer
    return {"public_key": issuer.public_key_hex}


@router.get("/me")
def get_me(who: Who) -> dict[str, Any]:
    """Who the token belongs to: a workstation's sync checks its credential with this."""
    return {"name": who.name, "role": str(who.role), "workshop": who.workshop}


def parse_moment(text: str | None, what: str) -> datetime | None:
    """A ``since``/``until`` value: a date (midnight UTC) or an ISO time (UTC if no zone).

    Raises:
        ConfigError: neither.
    """
    if not text or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is no date (2026-11-01) or ISO time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def report_json(
    request: Request, who: Caller, workshop: str | None, since: str | None, until: str | None
) -> dict[str, Any]:
    """The report a user may see, as JSON."""
    db = database(request)
    workshop_id, name = scope(db, person(who), workshop)
    return central_report(
        db,
        workshop_id=workshop_id,
        workshop=name,
        since=parse_moment(since, "since"),
        until=parse_moment(until, "until"),
    ).to_json()


@router.get("/reports", responses=responses(400, 403))
def get_reports(
    request: Request,
    who: Who,
    *,
    workshop: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Sessions, success rate, mean durations, top failures and FSCs issued; an analyst
    sees their workshop, an admin any (``workshop``) or all."""
    return report_json(request, who, workshop, since, until)
