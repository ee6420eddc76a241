"""Alembic environment of the backend: migrations run on the connection that
:func:`ecuworks.platform.db.open_database` passes, versioned in its own table."""

from __future__ import annotations

from alembic import context

from ecuworks.backend.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=context.config.attributes["version_table"],
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
