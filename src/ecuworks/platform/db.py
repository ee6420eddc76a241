"""The platform database: SQLite in WAL mode under the data directory, or PostgreSQL by URL.

:func:`open_database` connects, runs the Alembic migrations up to the newest (so a new
release upgrades the file on its first start) and hands out sessions. A database that is
gone, corrupt, newer than this release or unreachable is a :class:`DatabaseError` that
names it (without its password) and says what to do; nothing in it is changed then.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ecuworks.errors import DatabaseError

__all__ = ["DB_FILE", "Database", "default_url", "open_database", "redacted"]

DB_FILE: Final = "ecuworks.sqlite3"
_MIGRATIONS: Final = Path(__file__).with_name("migrations")


def default_url(home: Path) -> str:
    """The embedded database: ``sqlite:///<home>/ecuworks.sqlite3``."""
    return f"sqlite:///{home / DB_FILE}"


def redacted(url: str) -> str:
    """The URL as shown to a person: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a database URL>"


@dataclass(frozen=True)
class Database:
    """An open, migrated database.

    Attributes:
        url: its URL (with the password: never print it, use :func:`redacted`).
        engine: the SQLAlchemy engine (pooled).
    """

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end of the block, rolled back on an error.

        Raises:
            DatabaseError: the database failed (it is named; nothing half-written stays).
        """
        session = self.sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as error:
            session.rollback()
            raise DatabaseError(
                f"the database {redacted(self.url)} failed: {_first_line(error)}; check that "
                "it is reachable and not full, then try again"
            ) from error
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.splitlines()[0] if text else type(error).__name__


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise DatabaseError(
            f"--db {url!r} is not a database URL; use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/NAME"
        ) from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            raise DatabaseError(
                f"the directory of the database {path} does not exist; create it or pass "
                "another --db"
            )
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_size=5, max_overflow=10, pool_pre_ping=True)
    raise DatabaseError(
        f"--db {redacted(url)}: only SQLite and PostgreSQL are supported, not {backend}"
    )


def _alembic_config(migrations: Path, version_table: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["version_table"] = version_table
    return config


def open_database(
    url: str, *, migrations: Path = _MIGRATIONS, version_table: str = "alembic_version"
) -> Database:
    """Connect to ``url`` and migrate it to the newest schema.

    Args:
        url: the database URL.
        migrations: the Alembic migrations directory; the platform's by default (the
            central backend passes its own).
        version_table: the table Alembic keeps the schema revision in, so that two
            schemas with their own migrations can share one database.

    Raises:
        DatabaseError: unreachable, corrupt, or written by a newer release of ecuworks.
    """
    engine = _engine(url)
    config = _alembic_config(migrations, version_table)
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with engine.begin() as connection:
            current = MigrationContext.configure(
                connection, opts={"version_table": version_table}
            ).get_current_revision()
            known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
            if current is not None and current not in known:
                raise DatabaseError(
                    f"the database {redacted(url)} has schema {current}, which this release "
                    f"of ecuworks does not know (newest here: {head}); upgrade ecuworks. It "
                    "was left untouched"
                )
            if current != head:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
    except DatabaseError:
        engine.dispose()
        raise
    except SQLAlchemyError as error:
        engine.dispose()
        raise DatabaseError(
            f"cannot open the database {redacted(url)}: {_first_line(error)}. Check the URL, "
            "that the server runs, and that the file is an ecuworks database"
        ) from error
    return Database(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
