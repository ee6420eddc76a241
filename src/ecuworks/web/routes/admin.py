"""Routes of the web UI (being built; see the module's owner in the session notes)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
