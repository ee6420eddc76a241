"""``python -m ecuworks`` runs the command line."""

from ecuworks.cli.main import main

main()
