"""The workshop platform (the trade's ISPI role): database, users and roles, the interface
manager, the vehicle history and the audit log. The web UI and the CLI both stand on it."""
