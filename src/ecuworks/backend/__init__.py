"""The central server: workshops and users, the P-Data repository as static files, FSC
issuing, history ingest and central reports (DESIGN.md, ``ecuworks.backend``).

:func:`~ecuworks.backend.app.create_backend` builds the FastAPI app over its own database
(:mod:`~ecuworks.backend.db`: PostgreSQL in production, SQLite for the embedded demo);
``ecuworks backend`` serves it. :class:`~ecuworks.backend.fsc.FscIssuer` is also used
in-process by the command line with the demo key.
"""

from ecuworks.backend.fsc import DEMO_SEED, FscIssuer

__all__ = ["DEMO_SEED", "FscIssuer"]
