"""The backend's database: the platform's :func:`open_database` with the backend's own
migrations and version table, so the two schemas never mix up their revisions."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from ecuworks.platform.db import Database, open_database

__all__ = ["DB_FILE", "VERSION_TABLE", "default_backend_url", "open_backend_database"]

DB_FILE: Final = "backend.sqlite3"
VERSION_TABLE: Final = "backend_alembic_version"
_MIGRATIONS: Final = Path(__file__).with_name("migrations")


def default_backend_url(home: Path) -> str:
    """The embedded backend database: ``sqlite:///<home>/backend.sqlite3``."""
    return f"sqlite:///{home / DB_FILE}"


def open_backend_database(url: str) -> Database:
    """Connect to ``url`` and migrate the backend's schema to the newest.

    Raises:
        DatabaseError: unreachable, corrupt, or written by a newer release of ecuworks.
    """
    return open_database(url, migrations=_MIGRATIONS, version_table=VERSION_TABLE)
