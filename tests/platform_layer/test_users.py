"""Users, logins, tokens and the audit log over a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ecuworks.errors import AccessDenied, ConfigError
from ecuworks.platform.db import Database, default_url, open_database
from ecuworks.platform.users import (
    LOCK_AFTER,
    Role,
    audit,
    audit_entries,
    authenticate_session,
    authenticate_token,
    create_token,
    create_user,
    list_tokens,
    log_in,
    revoke_token_id,
    set_disabled,
    set_password,
    user_states,
)

PASSWORD = "correct horse battery"
VIN = "WBA00000000000042"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(default_url(tmp_path))
    yield database
    database.close()


def test_roles_allow_what_the_lower_ones_may() -> None:
    assert Role.ADMIN.allows(Role.TECHNICIAN)
    assert Role.TECHNICIAN.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.TECHNICIAN)


def test_names_and_passwords_are_checked(db: Database) -> None:
    create_user(db, "ada", PASSWORD, Role.TECHNICIAN)
    with pytest.raises(ConfigError, match="exists already"):
        create_user(db, "ada", PASSWORD, Role.VIEWER)
    with pytest.raises(ConfigError, match="at least 10 characters"):
        create_user(db, "bob", "short", Role.VIEWER)
    with pytest.raises(ConfigError, match="1 to 64 printable"):
        create_user(db, " ", PASSWORD, Role.VIEWER)


def test_failed_logins_lock_the_name_until_a_reset(db: Database) -> None:
    create_user(db, "ada", PASSWORD, Role.TECHNICIAN)
    for _ in range(LOCK_AFTER):
        with pytest.raises(AccessDenied, match="wrong user name or password"):
            log_in(db, "ada", "guess guess guess", address="10.0.0.1")
    with pytest.raises(AccessDenied, match="locked") as locked:
        log_in(db, "ada", PASSWORD, address="10.0.0.2")
    assert locked.value.status == 429
    assert [s.locked for s in user_states(db)] == [True]
    set_password(db, "ada", PASSWORD)
    assert [s.locked for s in user_states(db)] == [False]
    assert log_in(db, "ada", PASSWORD, address="10.0.0.2").principal.name == "ada"
    assert [e.action for e in audit_entries(db, user="ada")] == ["login", "locked"]


def test_disabling_ends_sessions_and_stops_tokens(db: Database) -> None:
    create_user(db, "ada", PASSWORD, Role.TECHNICIAN)
    login = log_in(db, "ada", PASSWORD, address="127.0.0.1")
    token = create_token(db, "ada", "bench")
    set_disabled(db, "ada", True)
    assert authenticate_session(db, login.secret) is None
    assert authenticate_token(db, token) is None
    assert [s.disabled for s in user_states(db)] == [True]
    with pytest.raises(AccessDenied):
        log_in(db, "ada", PASSWORD, address="127.0.0.1")
    set_disabled(db, "ada", False)
    assert authenticate_token(db, token) is not None
    assert authenticate_session(db, login.secret) is None  # a new login is needed


def test_tokens_are_listed_without_secrets_and_revoked_by_id(db: Database) -> None:
    create_user(db, "ada", PASSWORD, Role.TECHNICIAN)
    first = create_token(db, "ada", "bench")
    second = create_token(db, "ada", "ci")
    assert authenticate_token(db, first) is not None
    tokens = list_tokens(db)
    assert [(t.label, t.revoked) for t in tokens] == [("ci", False), ("bench", False)]
    assert tokens[1].last_used_at is not None
    assert tokens[0].last_used_at is None
    revoked = revoke_token_id(db, tokens[1].id)
    assert (revoked.user, revoked.label, revoked.revoked) == ("ada", "bench", True)
    assert authenticate_token(db, first) is None
    assert authenticate_token(db, second) is not None
    with pytest.raises(ConfigError, match="no API token with id 999"):
        revoke_token_id(db, 999)


def test_the_audit_log_filters_by_vin_and_user_newest_first(db: Database) -> None:
    audit(db, "ada", "program", vin=VIN, detail="to F020-24-03-500")
    audit(db, "bob", "code", vin=VIN)
    audit(db, "ada", "identify", vin="WBA00000000000043")
    assert [e.action for e in audit_entries(db)] == ["identify", "code", "program"]
    assert [e.action for e in audit_entries(db, vin=VIN.lower())] == ["code", "program"]
    assert [e.action for e in audit_entries(db, user="ada")] == ["identify", "program"]
    assert [e.action for e in audit_entries(db, actions=("code",))] == ["code"]
    assert len(audit_entries(db, limit=1)) == 1
