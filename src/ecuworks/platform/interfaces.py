"""The interface manager: the vehicle interfaces (VCIs) a workstation knows, their status,
and their reservations (being built)."""

from __future__ import annotations

__all__ = ["reservation_owner"]


def reservation_owner(user: str, workstation: str) -> str:
    """The owner name a reservation is held under: ``user@workstation``."""
    return f"{user}@{workstation}"[:64]
