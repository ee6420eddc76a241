"""Who may use the backend: workshops, their workstations' tokens, users, and logins.

Three kinds of caller, each with a ``Bearer`` token stored only as SHA-256 of its secret:

- a **workstation** (token issued by an admin, revocable): sends its history, obtains
  enabling codes, reads its own workshop's history;
- an **analyst** (a user of one workshop): reads that workshop's history and reports;
- an **admin** (a user of no workshop): reads every workshop's.

Users also log in to the report pages with a password (argon2id) and a session cookie.
Passwords, token secrets and their digests are made as the workstation's accounts make
them (:mod:`ecuworks.platform.users`), with the same helpers.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ecuworks.backend.models import (
    User,
    UserSession,
    UserToken,
    Workshop,
    WorkstationCredential,
)
from ecuworks.errors import AccessDenied, ConfigError
from ecuworks.platform.db import Database
from ecuworks.platform.history import utc

# The workstation's account helpers, so that both hash passwords and tokens alike.
from ecuworks.platform.users import (
    DUMMY_HASH,
    PASSWORD_HASHER,
    TOKEN_PREFIX,
    check_name,
    check_password,
    digest_secret,
    verify_password,
)

__all__ = [
    "SESSION_LIFETIME",
    "Caller",
    "Role",
    "add_user",
    "add_workshop",
    "add_workstation",
    "authenticate_session",
    "authenticate_token",
    "create_user_token",
    "end_session",
    "has_admin",
    "log_in",
    "revoke_workstation",
    "workshop_by_name",
]

SESSION_LIFETIME: Final = timedelta(hours=12)


class Role(StrEnum):
    """What kind of caller: a person (admin, analyst) or a workstation."""

    ADMIN = "admin"
    ANALYST = "analyst"
    WORKSTATION = "workstation"


@dataclass(frozen=True)
class Caller:
    """Who makes a request.

    Attributes:
        role: admin, analyst or workstation.
        name: the user's or the workstation's name.
        workshop_id: its workshop (None for an admin).
        workshop: that workshop's name.
        csrf: the browser session's CSRF token (empty for a Bearer token).
    """

    role: Role
    name: str
    workshop_id: int | None
    workshop: str | None
    csrf: str = ""

    @property
    def is_workstation(self) -> bool:
        """True for a workstation's token."""
        return self.role is Role.WORKSTATION


def _now() -> datetime:
    return datetime.now(UTC)


def _new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def workshop_by_name(session: Session, name: str) -> Workshop:
    """The workshop called ``name``.

    Raises:
        ConfigError: there is none.
    """
    found = session.scalars(select(Workshop).where(Workshop.name == name.strip())).first()
    if found is None:
        raise ConfigError(
            f"no workshop named {name!r}; add it with 'ecuworks backend workshop add NAME'"
        )
    return found


def add_workshop(database: Database, name: str) -> None:
    """Add a workshop.

    Raises:
        ConfigError: the name is invalid or taken.
    """
    name = check_name(name)
    with database.session() as session:
        if session.scalars(select(Workshop).where(Workshop.name == name)).first() is not None:
            raise ConfigError(f"a workshop named {name!r} exists already")
        session.add(Workshop(name=name, created_at=_now()))


def add_workstation(database: Database, workshop: str, name: str) -> str:
    """Issue a token for workstation ``name`` of ``workshop``; the secret is returned once.

    A workstation whose tokens were all revoked may get a new one under its old name: its
    history chains go on.

    Raises:
        ConfigError: no such workshop, an invalid name, or a live token of that name.
    """
    name = name.strip()
    if not 1 <= len(name) <= 128 or not name.isprintable():
        raise ConfigError(f"a workstation name is 1 to 128 printable characters, got {name!r}")
    secret = _new_secret()
    with database.session() as session:
        shop = workshop_by_name(session, workshop)
        live = session.scalars(
            select(WorkstationCredential).where(
                WorkstationCredential.workshop_id == shop.id,
                WorkstationCredential.name == name,
                WorkstationCredential.revoked_at.is_(None),
            )
        ).first()
        if live is not None:
            raise ConfigError(
                f"workstation {name!r} of {shop.name!r} has a live token; revoke it first "
                "('ecuworks backend workstation revoke WORKSHOP NAME')"
            )
        session.add(
            WorkstationCredential(
                workshop_id=shop.id, name=name, token_hash=digest_secret(secret), created_at=_now()
            )
        )
    return secret


def revoke_workstation(database: Database, workshop: str, name: str) -> int:
    """Revoke every live token of workstation ``name``; how many were revoked.

    Raises:
        ConfigError: no such workshop, or the workstation has no live token.
    """
    with database.session() as session:
        shop = workshop_by_name(session, workshop)
        live = session.scalars(
            select(WorkstationCredential).where(
                WorkstationCredential.workshop_id == shop.id,
                WorkstationCredential.name == name.strip(),
                WorkstationCredential.revoked_at.is_(None),
            )
        ).all()
        if not live:
            raise ConfigError(f"workstation {name!r} of {shop.name!r} has no live token")
        for credential in live:
            credential.revoked_at = _now()
        return len(live)


def add_user(
    database: Database, name: str, password: str, role: Role, *, workshop: str | None = None
) -> None:
    """Add a backend user: an admin (no workshop) or an analyst of ``workshop``.

    Raises:
        ConfigError: the name is invalid or taken, the password too short, the role or
            workshop does not fit.
    """
    name = check_name(name)
    check_password(password)
    if role is Role.WORKSTATION:
        raise ConfigError("a workstation is no user; use 'ecuworks backend workstation add'")
    if (role is Role.ANALYST) != (workshop is not None):
        raise ConfigError("an analyst belongs to one workshop (--workshop); an admin to none")
    with database.session() as session:
        if session.scalars(select(User).where(User.name == name)).first() is not None:
            raise ConfigError(f"a backend user named {name!r} exists already")
        shop_id = workshop_by_name(session, workshop).id if workshop is not None else None
        session.add(
            User(
                name=name,
                password_hash=PASSWORD_HASHER.hash(password),
                role=str(role),
                workshop_id=shop_id,
                created_at=_now(),
                disabled=False,
            )
        )


def has_admin(database: Database) -> bool:
    """True once the backend has an admin."""
    with database.session() as session:
        return session.scalars(select(User.id).where(User.role == Role.ADMIN)).first() is not None


def create_user_token(database: Database, name: str, label: str = "api") -> str:
    """A new API token for user ``name``; the secret is returned once and stored hashed.

    Raises:
        ConfigError: no such user.
    """
    secret = _new_secret()
    with database.session() as session:
        user = session.scalars(select(User).where(User.name == name)).first()
        if user is None:
            raise ConfigError(f"no backend user named {name!r}")
        session.add(
            UserToken(
                token_hash=digest_secret(secret),
                user_id=user.id,
                label=label[:64],
                created_at=_now(),
            )
        )
    return secret


def _user_caller(session: Session, user: User, csrf: str = "") -> Caller:
    shop = session.get(Workshop, user.workshop_id) if user.workshop_id is not None else None
    return Caller(Role(user.role), user.name, user.workshop_id, shop.name if shop else None, csrf)


def authenticate_token(database: Database, secret: str) -> Caller | None:
    """The caller of a live workstation or user token; None if unknown or revoked."""
    digest = digest_secret(secret)
    with database.session() as session:
        row = session.execute(
            select(WorkstationCredential, Workshop.name)
            .join(Workshop, Workshop.id == WorkstationCredential.workshop_id)
            .where(WorkstationCredential.token_hash == digest)
        ).first()
        if row is not None:
            credential, shop = row
            if credential.revoked_at is not None:
                return None
            return Caller(Role.WORKSTATION, credential.name, credential.workshop_id, shop)
        found = session.execute(
            select(User, UserToken)
            .join(UserToken, UserToken.user_id == User.id)
            .where(UserToken.token_hash == digest)
        ).first()
        if found is None or found[1].revoked_at is not None or found[0].disabled:
            return None
        return _user_caller(session, found[0])


def log_in(database: Database, name: str, password: str) -> tuple[str, str]:
    """Check a user's password and open a browser session: (cookie secret, CSRF token).

    Raises:
        AccessDenied: 401, wrong name or password (the message does not say which).
    """
    with database.session() as session:
        user = session.scalars(select(User).where(User.name == name.strip())).first()
        good = verify_password(user.password_hash if user else DUMMY_HASH, password)
        if user is None or not good or user.disabled:
            raise AccessDenied("wrong user name or password", status=401)
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session.add(
            UserSession(
                token_hash=digest_secret(secret),
                user_id=user.id,
                csrf=csrf,
                expires_at=_now() + SESSION_LIFETIME,
            )
        )
        return secret, csrf


def authenticate_session(database: Database, secret: str) -> Caller | None:
    """The user of a live browser session (with its CSRF token), or None."""
    with database.session() as session:
        row = session.execute(
            select(User, UserSession)
            .join(UserSession, UserSession.user_id == User.id)
            .where(UserSession.token_hash == digest_secret(secret))
        ).first()
        if row is None:
            return None
        user, web = row
        if user.disabled or utc(web.expires_at) <= _now():
            return None
        return _user_caller(session, user, web.csrf)


def end_session(database: Database, secret: str) -> None:
    """Log a browser session out."""
    with database.session() as session:
        session.execute(delete(UserSession).where(UserSession.token_hash == digest_secret(secret)))
