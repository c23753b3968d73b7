"""Users, logins and sessions of the web console, on the hub database.

A login needs the password (argon2id) and a current TOTP code; a code is accepted once.
The TOTP secret is stored sealed under a key derived from the user's password
(``passphrase_seal``, the username as associated data), so a copy of the database holds
neither the password nor the second factor: a login opens it only after the password
hash verified. A secret stored in clear by an older hub is sealed at that user's next
successful login. Setting a password enrols a new TOTP secret (the old one is sealed
under the old password, which the hub does not have).
``max_failures`` failed logins in a row lock the account for ``lockout_s``, and a
locked account refuses even correct credentials (the caller cannot tell the difference
from the reply, only the audit log can). A session is a random token given to the
browser as a cookie; the database keeps only its SHA-256, with the CSRF token the
session's forms must carry, and ends it after ``idle_s`` without use or ``max_s``
after login.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from agent.errors import LfrError, UsageError
from agent.hub.keys.passphrase_seal import SealError, is_sealed, seal, unseal
from agent.hub.store.console_tables import ROLES, console_sessions, console_users
from agent.hub.store.database import HubDatabase

USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD = 12
TOTP_STEP_S = 30
ISSUER = "lfr-hub console"
#: A session's use is written at most this often: idle expiry is to within this, and a
#: page's requests do not each write to the database (each write is also a change
#: that open pages are told about on SQLite).
TOUCH_EVERY_S = 30.0
#: A hash to verify against when the user does not exist, so that case takes as long.
_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 low-memory profile
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class AccountError(LfrError):
    """An account operation failed (unknown user, duplicate, bad role)."""

    exit_code = 2


@dataclass(frozen=True)
class User:
    username: str
    role: str
    disabled: bool
    failed_logins: int
    locked_until: float
    created_at: float


@dataclass(frozen=True)
class Session:
    token: str  # the cookie value; never stored
    username: str
    role: str
    csrf_token: str
    created_at: float
    last_seen: float


@dataclass(frozen=True)
class LoginResult:
    session: Session | None
    #: Why a login failed, for the audit log only (the page says one generic thing).
    reason: str


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise UsageError(
            f"username {name[:40]!r}: 2–32 characters, a lowercase letter first, then a-z 0-9 . _ -"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"password: at least {MIN_PASSWORD} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"role {role[:40]!r}: must be one of {', '.join(ROLES)}")
    return role


def _totp_associated(username: str) -> bytes:
    return b"lfr console totp\0" + username.encode("utf-8")


def _seal_totp(username: str, password: str, secret: str) -> str:
    return seal(secret.encode("ascii"), password, _totp_associated(username)).decode("ascii")


def _open_totp(username: str, password: str, stored: str) -> str | None:
    """The TOTP secret (``stored`` sealed, or in clear from an older hub), or None if it
    does not open with ``password``."""
    if not is_sealed(stored):
        return stored if re.fullmatch(r"[A-Z2-7]{16,128}=*", stored) else None
    try:
        return unseal(stored, password, _totp_associated(username)).decode("ascii")
    except (SealError, UnicodeDecodeError):
        return None


@functools.cache
def _dummy_sealed_totp() -> str:
    """A sealed secret of nobody, opened (and failing) for an unknown user so that case
    takes as long as a known one."""
    return _seal_totp("", "not a password of anyone", pyotp.random_base32())


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_key(token: str) -> str:
    """What names a session in this process's memory (its token's SHA-256, as stored)."""
    return _token_hash(token)


class ConsoleAccounts:
    def __init__(
        self,
        database: HubDatabase,
        *,
        idle_s: float = 900.0,
        max_s: float = 12 * 3600.0,
        max_failures: int = 5,
        lockout_s: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.idle_s, self.max_s = idle_s, max_s
        self.max_failures, self.lockout_s = max_failures, lockout_s
        self.clock = clock

    # ---- users ---------------------------------------------------------------------
    def add_user(self, username: str, role: str, password: str) -> str:
        """Create a user; returns the TOTP provisioning URI for the authenticator app."""
        check_username(username)
        check_role(role)
        check_password(password)
        secret = pyotp.random_base32()
        try:
            with self.database.write() as db:
                db.execute(
                    insert(console_users).values(
                        username=username,
                        role=role,
                        password_hash=_hasher.hash(password),
                        totp_secret=_seal_totp(username, password, secret),
                        created_at=self.clock(),
                    )
                )
        except IntegrityError as exc:
            raise AccountError(f"user {username!r}: already exists") from exc
        return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)

    def set_password(self, username: str, password: str) -> str:
        """Set a new password and enrol a new TOTP secret sealed under it (the old one
        opens only with the old password); returns the new provisioning URI."""
        check_password(password)
        secret = pyotp.random_base32()
        self._update(
            username,
            password_hash=_hasher.hash(password),
            totp_secret=_seal_totp(username, password, secret),
            totp_last_step=0,
            failed_logins=0,
        )
        self.end_sessions(username)
        return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)

    def set_disabled(self, username: str, disabled: bool) -> None:
        self._update(username, disabled=disabled)
        if disabled:
            self.end_sessions(username)

    def _update(self, username: str, **values: object) -> None:
        with self.database.write() as db:
            done = db.execute(
                update(console_users).where(console_users.c.username == username).values(**values)
            )
        if done.rowcount != 1:
            raise AccountError(f"user {username[:40]!r}: no such user")

    def users(self) -> list[User]:
        with self.database.read() as db:
            rows = db.execute(
                select(
                    console_users.c.username,
                    console_users.c.role,
                    console_users.c.disabled,
                    console_users.c.failed_logins,
                    console_users.c.locked_until,
                    console_users.c.created_at,
                ).order_by(console_users.c.username)
            ).all()
        return [User(r[0], r[1], bool(r[2]), int(r[3]), float(r[4]), float(r[5])) for r in rows]

    def totp_secret(self, username: str, password: str) -> str:
        """The user's TOTP secret, opened with their password (for test rigs)."""
        with self.database.read() as db:
            stored = db.scalar(
                select(console_users.c.totp_secret).where(console_users.c.username == username)
            )
        if stored is None:
            raise AccountError(f"user {username[:40]!r}: no such user")
        secret = _open_totp(username, password, str(stored))
        if secret is None:
            raise AccountError(f"user {username[:40]!r}: wrong password or damaged TOTP secret")
        return secret

    # ---- login ---------------------------------------------------------------------
    def login(self, username: str, password: str, code: str) -> LoginResult:
        now = self.clock()
        with self.database.read() as db:
            row = db.execute(
                select(
                    console_users.c.password_hash,
                    console_users.c.totp_secret,
                    console_users.c.totp_last_step,
                    console_users.c.disabled,
                    console_users.c.locked_until,
                    console_users.c.role,
                ).where(console_users.c.username == username)
            ).first()
        if row is None:
            _password_ok(_DUMMY_HASH, password)
            _open_totp(username, password, _dummy_sealed_totp())
            return LoginResult(None, "unknown user")
        password_hash, stored, last_step, disabled, locked_until, role = row
        password_ok = _password_ok(str(password_hash), password)
        # The key derivation runs whatever the password, so the reply's timing does not
        # tell a guesser that the password was right and only the code wrong; its result
        # is used only once the password hash verified.
        opened = _open_totp(username, password, str(stored))
        secret = opened if password_ok else None
        step = _totp_step(secret, code, now) if secret is not None else None
        if disabled:
            return LoginResult(None, "account disabled")
        if locked_until > now:
            return LoginResult(None, "account locked")
        if not password_ok or step is None or step <= int(last_step):
            reason = (
                "wrong password"
                if not password_ok
                else ("wrong code" if step is None else "code re-used")
            )
            self._failed(username, now)
            return LoginResult(None, reason)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        resealed = (
            {"totp_secret": _seal_totp(username, password, secret)}
            if secret is not None and not is_sealed(str(stored))
            else {}
        )
        with self.database.write() as db:
            db.execute(
                update(console_users)
                .where(console_users.c.username == username)
                .values(totp_last_step=step, failed_logins=0, locked_until=0, **resealed)
            )
            db.execute(
                insert(console_sessions).values(
                    token_sha256=_token_hash(token),
                    username=username,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen=now,
                )
            )
        return LoginResult(Session(token, username, str(role), csrf, now, now), "ok")

    def _failed(self, username: str, now: float) -> None:
        with self.database.write() as db:
            failures = int(
                db.scalar(
                    update(console_users)
                    .where(console_users.c.username == username)
                    .values(failed_logins=console_users.c.failed_logins + 1)
                    .returning(console_users.c.failed_logins)
                )
                or 0
            )
            if failures >= self.max_failures:
                db.execute(
                    update(console_users)
                    .where(console_users.c.username == username)
                    .values(failed_logins=0, locked_until=now + self.lockout_s)
                )

    # ---- sessions ------------------------------------------------------------------
    def session(self, token: str, *, touch: bool = True) -> Session | None:
        """The live session of a cookie token, or None; ``touch`` records its use (an
        open event stream checks its session without keeping it alive)."""
        if not token or len(token) > 100:
            return None
        now = self.clock()
        digest = _token_hash(token)
        with self.database.read() as db:
            row = db.execute(
                select(
                    console_sessions.c.username,
                    console_users.c.role,
                    console_sessions.c.csrf_token,
                    console_sessions.c.created_at,
                    console_sessions.c.last_seen,
                    console_users.c.disabled,
                )
                .join(console_users, console_users.c.username == console_sessions.c.username)
                .where(console_sessions.c.token_sha256 == digest)
            ).first()
        if row is None:
            return None
        username, role, csrf, created, last_seen, disabled = row
        if disabled or now - last_seen > self.idle_s or now - created > self.max_s:
            self.logout(token)
            return None
        if not touch or now - last_seen < TOUCH_EVERY_S:
            return Session(token, str(username), str(role), str(csrf), float(created), last_seen)
        with self.database.write() as db:
            db.execute(
                update(console_sessions)
                .where(console_sessions.c.token_sha256 == digest)
                .values(last_seen=now)
            )
        return Session(token, str(username), str(role), str(csrf), float(created), now)

    def live_session_keys(self) -> frozenset[str]:
        """The ``session_key`` of every session that may still act: not idle or past its
        shift, its user neither disabled nor locked out (a lock-out leaves the session's
        pages readable until they end, but it may no longer sign)."""
        now = self.clock()
        with self.database.read() as db:
            rows = db.execute(
                select(console_sessions.c.token_sha256)
                .join(console_users, console_users.c.username == console_sessions.c.username)
                .where(
                    console_sessions.c.last_seen >= now - self.idle_s,
                    console_sessions.c.created_at >= now - self.max_s,
                    console_users.c.disabled.is_(False),
                    console_users.c.locked_until <= now,
                )
            ).all()
        return frozenset(str(r[0]) for r in rows)

    def logout(self, token: str) -> None:
        with self.database.write() as db:
            db.execute(
                delete(console_sessions).where(
                    console_sessions.c.token_sha256 == _token_hash(token)
                )
            )

    def end_sessions(self, username: str) -> None:
        with self.database.write() as db:
            db.execute(delete(console_sessions).where(console_sessions.c.username == username))


def csrf_matches(session: Session, given: str) -> bool:
    return hmac.compare_digest(session.csrf_token.encode(), given.encode())


def _password_ok(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _totp_step(secret: str, code: str, now: float) -> int | None:
    """The time step whose code ``code`` is (this, the previous or the next), or None."""
    if not re.fullmatch(r"[0-9]{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    step = int(now // TOTP_STEP_S)
    for s in (step - 1, step, step + 1):
        if hmac.compare_digest(totp.at(s * TOTP_STEP_S), code):
            return s
    return None
