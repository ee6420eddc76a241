"""Users, roles, logins, API tokens and the audit log.

Roles, each allowed what the one after it is: ``admin`` (users, data, everything),
``technician`` (identify, program, code, enable, retrofit, replace, clear faults),
``viewer`` (read only). Passwords are stored as argon2id hashes; browser sessions and API
tokens as SHA-256 of a random secret that only the holder has.

Logins are rate limited: :data:`LOCK_AFTER` failures for one name within
:data:`WINDOW` lock that name for :data:`LOCK_FOR` (a locked name is refused even with the
right password, so guessing gains nothing), and one client address may try at most
:data:`ADDRESS_LIMIT` times per window whatever the names.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ecuworks.errors import AccessDenied, ConfigError
from ecuworks.platform.db import Database
from ecuworks.platform.history import utc
from ecuworks.platform.models import ApiToken, AuditEntry, LoginAttempt, User, WebSession

__all__ = [
    "ADDRESS_LIMIT",
    "DUMMY_HASH",
    "LOCK_AFTER",
    "LOCK_FOR",
    "PASSWORD_HASHER",
    "SESSION_LIFETIME",
    "TOKEN_PREFIX",
    "WINDOW",
    "Login",
    "Principal",
    "Role",
    "TokenInfo",
    "UserState",
    "audit",
    "audit_entries",
    "authenticate_session",
    "authenticate_token",
    "check_name",
    "check_password",
    "create_token",
    "create_user",
    "digest_secret",
    "end_session",
    "list_tokens",
    "log_in",
    "revoke_token_id",
    "set_disabled",
    "set_password",
    "set_role",
    "user_states",
    "verify_password",
]

LOCK_AFTER: Final = 5
WINDOW: Final = timedelta(minutes=15)
LOCK_FOR: Final = timedelta(minutes=15)
ADDRESS_LIMIT: Final = 20
SESSION_LIFETIME: Final = timedelta(hours=12)
TOKEN_PREFIX: Final = "ew_"  # noqa: S105 -- a prefix, not a secret
PASSWORD_HASHER: Final = PasswordHasher()
# Verified against when the name is unknown, so both cases take the same time.
DUMMY_HASH: Final = PASSWORD_HASHER.hash("not a password of anyone")


class Role(StrEnum):
    """What a user may do; each role may do what the ones after it may."""

    ADMIN = "admin"
    TECHNICIAN = "technician"
    VIEWER = "viewer"

    def allows(self, needed: Role) -> bool:
        """True when this role may do what ``needed`` may."""
        order = list(Role)
        return order.index(self) <= order.index(needed)


@dataclass(frozen=True)
class Principal:
    """Who makes a request: the user's id, name and role."""

    id: int
    name: str
    role: Role

    def require(self, needed: Role) -> None:
        """Raise AccessDenied (403) unless this user's role allows ``needed``."""
        if not self.role.allows(needed):
            raise AccessDenied(
                f"{self.name} is a {self.role}; this needs a {needed} (ask an admin)",
                status=403,
            )


@dataclass(frozen=True)
class Login:
    """A new browser session: the cookie's secret (shown once) and its CSRF token."""

    principal: Principal
    secret: str
    csrf: str


def digest_secret(secret: str) -> str:
    """SHA-256 (hex) of a session or API token: what is stored instead of the token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def check_name(name: str) -> str:
    """``name`` stripped, when it is 1 to 64 printable characters.

    Raises:
        ConfigError: it is not.
    """
    name = name.strip()
    if not 1 <= len(name) <= 64 or not name.isprintable():
        raise ConfigError(f"a user name is 1 to 64 printable characters, got {name!r}")
    return name


def check_password(password: str) -> None:
    """Refuse a password shorter than 10 characters.

    Raises:
        ConfigError: it is.
    """
    if len(password) < 10:
        raise ConfigError("a password needs at least 10 characters")


def _principal(user: User) -> Principal:
    return Principal(user.id, user.name, Role(user.role))


def create_user(database: Database, name: str, password: str, role: Role) -> Principal:
    """Create a user.

    Raises:
        ConfigError: the name is taken or invalid, or the password is too short.
    """
    name = check_name(name)
    check_password(password)
    with database.session() as session:
        if session.scalars(select(User).where(User.name == name)).first() is not None:
            raise ConfigError(f"a user named {name!r} exists already")
        user = User(
            name=name,
            password_hash=PASSWORD_HASHER.hash(password),
            role=str(role),
            created_at=_now(),
            failed_logins=0,
            disabled=False,
        )
        session.add(user)
        session.flush()
        return _principal(user)


def _user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise ConfigError(f"no user named {name!r}")
    return user


def set_role(database: Database, name: str, role: Role) -> None:
    """Change a user's role."""
    with database.session() as session:
        _user(session, name).role = str(role)


def set_password(database: Database, name: str, password: str) -> None:
    """Set a user's password; it also ends the lockout and every browser session."""
    check_password(password)
    with database.session() as session:
        user = _user(session, name)
        user.password_hash = PASSWORD_HASHER.hash(password)
        user.failed_logins = 0
        user.locked_until = None
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))


def log_in(database: Database, name: str, password: str, *, address: str) -> Login:
    """Check a name and password and open a browser session.

    Raises:
        AccessDenied: 401 wrong name or password (the message does not say which), 429
            when the name is locked or the address tried too often.
    """
    now = _now()
    with database.session() as session:
        recent = session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.address == address, LoginAttempt.at >= now - WINDOW)
        )
        if (recent or 0) >= ADDRESS_LIMIT:
            raise AccessDenied(
                f"too many login attempts from {address}; wait {WINDOW.seconds // 60} minutes",
                status=429,
            )
        user = session.scalars(select(User).where(User.name == name.strip())).first()
        if user is not None and user.locked_until and utc(user.locked_until) > now:
            session.add(LoginAttempt(name=name[:64], address=address, at=now, ok=False))
            minutes = max(1, int((utc(user.locked_until) - now).total_seconds() // 60) + 1)
            raise _commit_then(
                session,
                AccessDenied(
                    f"the account {user.name!r} is locked after {LOCK_AFTER} failed logins; "
                    f"try again in {minutes} minute(s) or ask an admin to reset the password",
                    status=429,
                ),
            )
        good = verify_password(user.password_hash if user else DUMMY_HASH, password)
        session.add(
            LoginAttempt(name=name[:64], address=address, at=now, ok=good and user is not None)
        )
        if user is None or not good or user.disabled:
            if user is not None and not user.disabled:
                user.failed_logins += 1
                if user.failed_logins >= LOCK_AFTER:
                    user.locked_until = now + LOCK_FOR
                    user.failed_logins = 0
                    session.add(_audit_entry(user.name, "locked", None, f"from {address}"))
            raise _commit_then(session, AccessDenied("wrong user name or password", status=401))
        user.failed_logins = 0
        user.locked_until = None
        if PASSWORD_HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = PASSWORD_HASHER.hash(password)
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session.add(
            WebSession(
                token_hash=digest_secret(secret),
                user_id=user.id,
                csrf=csrf,
                created_at=now,
                expires_at=now + SESSION_LIFETIME,
            )
        )
        session.add(_audit_entry(user.name, "login", None, f"from {address}"))
        return Login(_principal(user), secret, csrf)


def _commit_then(session: Session, error: AccessDenied) -> AccessDenied:
    """Keep the attempt and the counters although the login fails."""
    session.commit()
    return error


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the argon2 hash ``stored`` (False for a broken hash)."""
    try:
        return PASSWORD_HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate_session(database: Database, secret: str) -> tuple[Principal, str] | None:
    """The user and CSRF token of a live browser session, or None."""
    with database.session() as session:
        row = session.execute(
            select(User, WebSession)
            .join(WebSession, WebSession.user_id == User.id)
            .where(WebSession.token_hash == digest_secret(secret))
        ).first()
        if row is None:
            return None
        user, web = row
        if user.disabled or utc(web.expires_at) <= _now():
            return None
        return _principal(user), web.csrf


def end_session(database: Database, secret: str) -> None:
    """Log a browser session out."""
    with database.session() as session:
        session.execute(delete(WebSession).where(WebSession.token_hash == digest_secret(secret)))


def create_token(database: Database, name: str, label: str) -> str:
    """A new API token for user ``name``; the secret is returned once and stored hashed."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with database.session() as session:
        user = _user(session, name)
        session.add(
            ApiToken(
                token_hash=digest_secret(secret),
                user_id=user.id,
                name=label[:64] or "cli",
                created_at=_now(),
                revoked=False,
            )
        )
        session.add(_audit_entry(user.name, "token-created", None, label))
    return secret


def authenticate_token(database: Database, secret: str) -> Principal | None:
    """The user of a live API token, or None."""
    with database.session() as session:
        row = session.execute(
            select(User, ApiToken)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == digest_secret(secret))
        ).first()
        if row is None:
            return None
        user, token = row
        if token.revoked or user.disabled:
            return None
        token.last_used_at = _now()
        return _principal(user)


def _audit_entry(user: str, action: str, vin: str | None, detail: str) -> AuditEntry:
    return AuditEntry(at=_now(), user=user, action=action, vin=vin, detail=detail[:2000])


def audit(
    database: Database, user: str, action: str, *, vin: str | None = None, detail: str = ""
) -> None:
    """Record who did what (to which VIN) in the append-only audit log."""
    with database.session() as session:
        session.add(_audit_entry(user, action, vin, detail))


# -- administration (the admin pages and their JSON API) ---------------------------------


@dataclass(frozen=True)
class UserState:
    """A user as the admin page lists it."""

    principal: Principal
    disabled: bool
    locked_until: datetime | None

    @property
    def locked(self) -> bool:
        """True while failed logins keep the account locked."""
        return self.locked_until is not None and self.locked_until > _now()


@dataclass(frozen=True)
class TokenInfo:
    """An API token without its secret (only its holder has that)."""

    id: int
    user: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def user_states(database: Database) -> list[UserState]:
    """Every user with its disabled and lockout state, by name."""
    with database.session() as session:
        return [
            UserState(_principal(u), u.disabled, utc(u.locked_until) if u.locked_until else None)
            for u in session.scalars(select(User).order_by(User.name))
        ]


def set_disabled(database: Database, name: str, disabled: bool) -> None:
    """Disable or enable a user; disabling also ends every browser session of it.

    Raises:
        ConfigError: no such user.
    """
    with database.session() as session:
        user = _user(session, name)
        user.disabled = disabled
        if disabled:
            session.execute(delete(WebSession).where(WebSession.user_id == user.id))


def list_tokens(database: Database) -> list[TokenInfo]:
    """Every API token, newest first."""
    with database.session() as session:
        rows = session.execute(
            select(ApiToken, User.name)
            .join(User, ApiToken.user_id == User.id)
            .order_by(ApiToken.id.desc())
        ).all()
        return [_token_info(token, user) for token, user in rows]


def _token_info(token: ApiToken, user: str) -> TokenInfo:
    used = utc(token.last_used_at) if token.last_used_at else None
    return TokenInfo(token.id, user, token.name, utc(token.created_at), used, token.revoked)


def revoke_token_id(database: Database, token_id: int) -> TokenInfo:
    """Revoke the token with ``token_id`` (as :func:`list_tokens` shows it).

    Raises:
        ConfigError: no such token.
    """
    with database.session() as session:
        row = session.execute(
            select(ApiToken, User.name)
            .join(User, ApiToken.user_id == User.id)
            .where(ApiToken.id == token_id)
        ).first()
        if row is None:
            raise ConfigError(f"no API token with id {token_id}")
        token, user = row
        token.revoked = True
        return _token_info(token, user)


def audit_entries(
    database: Database,
    *,
    vin: str = "",
    user: str = "",
    actions: tuple[str, ...] = (),
    limit: int = 200,
) -> list[AuditEntry]:
    """The audit log, newest first, optionally only one VIN's, one user's or some actions."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if vin.strip():
        query = query.where(AuditEntry.vin == vin.strip().upper())
    if user.strip():
        query = query.where(AuditEntry.user == user.strip())
    if actions:
        query = query.where(AuditEntry.action.in_(actions))
    with database.session() as session:
        return list(session.scalars(query))
