"""Console accounts on both database engines: argon2id + TOTP logins, a code used once,
lock-out after repeated failures, idle and absolute session expiry, disabling."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pyotp
import pytest
from sqlalchemy import select, update

from agent.errors import UsageError
from agent.hub.accounts.console_accounts import AccountError, ConsoleAccounts
from agent.hub.keys.passphrase_seal import is_sealed
from agent.hub.store.console_tables import console_users
from agent.hub.store.database import HubDatabase

PW = "a long enough password"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(hub_db_url: str, clock: Clock) -> Iterator[ConsoleAccounts]:
    db = HubDatabase(hub_db_url)
    acc = ConsoleAccounts(db, idle_s=600, max_s=3600, max_failures=3, lockout_s=900, clock=clock)
    acc.add_user("olive", "operator", PW)
    yield acc
    db.close()


def code(acc: ConsoleAccounts, clock: Clock, offset_steps: int = 0) -> str:
    return pyotp.TOTP(acc.totp_secret("olive", PW)).at(int(clock.now) + 30 * offset_steps)


def test_password_is_stored_as_argon2id_only(accounts: ConsoleAccounts) -> None:
    with accounts.database.read() as db:
        stored = db.scalar(console_users.select().with_only_columns(console_users.c.password_hash))
    assert stored.startswith("$argon2id$") and PW not in stored


def test_login_needs_password_and_a_fresh_code(accounts: ConsoleAccounts, clock: Clock) -> None:
    ok = accounts.login("olive", PW, code(accounts, clock))
    assert ok.session is not None and ok.session.role == "operator"
    assert accounts.session(ok.session.token) is not None
    replay = accounts.login("olive", PW, code(accounts, clock))
    assert replay.session is None and replay.reason == "code re-used"
    clock.now += 30
    assert accounts.login("olive", "wrong password!", code(accounts, clock)).session is None
    assert accounts.login("olive", PW, "000000").reason in ("wrong code", "code re-used")
    assert accounts.login("nobody", PW, code(accounts, clock)).reason == "unknown user"


def test_lockout_after_repeated_failures(accounts: ConsoleAccounts, clock: Clock) -> None:
    for _ in range(3):
        assert accounts.login("olive", "not the password", "123456").session is None
    locked = accounts.login("olive", PW, code(accounts, clock))
    assert locked.session is None and locked.reason == "account locked"
    clock.now += 901
    assert accounts.login("olive", PW, code(accounts, clock)).session is not None


def test_sessions_expire_idle_and_absolute(accounts: ConsoleAccounts, clock: Clock) -> None:
    s = accounts.login("olive", PW, code(accounts, clock)).session
    assert s is not None
    clock.now += 601
    assert accounts.session(s.token) is None  # idle too long, and removed
    clock.now += 30
    s = accounts.login("olive", PW, code(accounts, clock)).session
    assert s is not None
    for _ in range(7):  # used every 500 s: never idle, alive until 3600 s after login
        clock.now += 500
        assert accounts.session(s.token) is not None
    clock.now += 200
    assert accounts.session(s.token) is None


def test_a_check_without_touch_does_not_keep_a_session_alive(
    accounts: ConsoleAccounts, clock: Clock
) -> None:
    s = accounts.login("olive", PW, code(accounts, clock)).session
    assert s is not None
    clock.now += 400
    assert accounts.session(s.token, touch=False) is not None  # an open event stream
    clock.now += 400
    assert accounts.session(s.token, touch=False) is None  # 800 s since its last use


def test_a_session_in_use_is_written_at_most_every_30_s(
    accounts: ConsoleAccounts, clock: Clock
) -> None:
    # Every write is a change open pages hear about: a page's own requests must not
    # each write (they would make the page re-read itself without end).
    s = accounts.login("olive", PW, code(accounts, clock)).session
    assert s is not None
    clock.now += 10
    got = accounts.session(s.token)
    assert got is not None and got.last_seen == s.created_at
    clock.now += 25
    got = accounts.session(s.token)
    assert got is not None and got.last_seen == clock.now


def test_disable_ends_sessions_and_refuses_login(accounts: ConsoleAccounts, clock: Clock) -> None:
    s = accounts.login("olive", PW, code(accounts, clock)).session
    assert s is not None
    accounts.set_disabled("olive", True)
    assert accounts.session(s.token) is None
    clock.now += 30
    assert accounts.login("olive", PW, code(accounts, clock)).reason == "account disabled"


def test_bad_account_input_is_refused(accounts: ConsoleAccounts) -> None:
    with pytest.raises(UsageError, match="at least 12"):
        accounts.add_user("bob", "operator", "short")
    with pytest.raises(UsageError, match="role"):
        accounts.add_user("bob", "admin", PW)
    with pytest.raises(UsageError, match="username"):
        accounts.add_user("Bob<script>", "operator", PW)
    with pytest.raises(AccountError, match="already exists"):
        accounts.add_user("olive", "operator", PW)
    with pytest.raises(AccountError, match="no such user"):
        accounts.set_disabled("nobody", True)


def _stored_totp(accounts: ConsoleAccounts, username: str) -> str:
    with accounts.database.read() as db:
        return str(
            db.scalar(
                select(console_users.c.totp_secret).where(console_users.c.username == username)
            )
        )


def test_the_totp_secret_is_stored_sealed_under_the_password(
    accounts: ConsoleAccounts, clock: Clock
) -> None:
    secret = accounts.totp_secret("olive", PW)
    stored = _stored_totp(accounts, "olive")
    assert is_sealed(stored) and secret not in stored
    assert base64.b32decode(secret) not in stored.encode()
    with pytest.raises(AccountError, match="wrong password or damaged TOTP secret"):
        accounts.totp_secret("olive", "not the password")
    # Olive's sealed secret copied to another user does not open there.
    accounts.add_user("oscar", "operator", PW)
    with accounts.database.write() as db:
        db.execute(
            update(console_users)
            .where(console_users.c.username == "oscar")
            .values(totp_secret=stored)
        )
    with pytest.raises(AccountError, match="wrong password or damaged TOTP secret"):
        accounts.totp_secret("oscar", PW)
    oscar_code = pyotp.TOTP(secret).at(int(clock.now))
    assert accounts.login("oscar", PW, oscar_code).reason == "wrong code"


def test_a_new_password_enrols_a_new_totp_secret(accounts: ConsoleAccounts, clock: Clock) -> None:
    old = accounts.totp_secret("olive", PW)
    uri = accounts.set_password("olive", "another long password")
    new = accounts.totp_secret("olive", "another long password")
    assert new != old and pyotp.parse_uri(uri).secret == new
    old_code = pyotp.TOTP(old).at(int(clock.now))
    assert accounts.login("olive", "another long password", old_code).reason == "wrong code"
    clock.now += 30
    new_code = pyotp.TOTP(new).at(int(clock.now))
    assert accounts.login("olive", "another long password", new_code).session is not None


def test_a_secret_stored_in_clear_is_sealed_at_the_next_login(
    accounts: ConsoleAccounts, clock: Clock
) -> None:
    """A row written by an older hub: it still logs in, and is sealed by doing so."""
    legacy = pyotp.random_base32()
    with accounts.database.write() as db:
        db.execute(
            update(console_users)
            .where(console_users.c.username == "olive")
            .values(totp_secret=legacy)
        )
    assert accounts.login("olive", "not the password", "123456").session is None
    assert _stored_totp(accounts, "olive") == legacy  # a failed login changes nothing
    assert accounts.login("olive", PW, pyotp.TOTP(legacy).at(int(clock.now))).session is not None
    stored = _stored_totp(accounts, "olive")
    assert is_sealed(stored) and legacy not in stored
    assert accounts.totp_secret("olive", PW) == legacy
