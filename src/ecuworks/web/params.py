"""Path and query parameters that the workstation's and the backend's routes share.

A row id in a path is bounded by what the database holds (SQLite INTEGER and PostgreSQL
BIGINT are 64-bit signed): a larger number is answered 422 saying so, instead of the
driver's overflow surfacing as a server error (found by ``make fuzz``).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Path

__all__ = ["MAX_ROW_ID", "RowId"]

MAX_ROW_ID: Final = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the row's id, as listed")]
