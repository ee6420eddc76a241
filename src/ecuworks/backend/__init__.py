"""The central server's logic: for now, issuing enabling codes (FSC).

Its HTTP service (workshops, users, P-Data repository, history ingest) comes later; until
then the command line calls :class:`~ecuworks.backend.fsc.FscIssuer` in-process with the
demo key.
"""

from ecuworks.backend.fsc import DEMO_SEED, FscIssuer

__all__ = ["DEMO_SEED", "FscIssuer"]
