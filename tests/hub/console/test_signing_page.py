"""'Unlock my signing key': a console user unlocks the operator key of their own name for
their session only; a user without one is told so; the unlocked key is dropped on
logout, session expiry, lock-out and disablement, and is never written to the hub
database. Starlette's TestClient against the real app, a real SQLite hub database and a
real hub key store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support.hub_console import PASSWORD, HubSetup, make_hub

from agent.hub.accounts.console_accounts import ConsoleAccounts, session_key
from agent.hub.console.console_app import create_console_app
from agent.hub.console.console_context import ConsoleContext, make_templates
from agent.hub.console.signing_sessions import SigningSessions
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.database import HubDatabase

PASSPHRASE = "a long passphrase of sam"


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class SigningConsole:
    def __init__(self, hub: HubSetup, keys: HubKeyStore) -> None:
        self.hub = hub
        self.db = HubDatabase(str(hub.db_path))
        self.clock = Clock()
        self.accounts = ConsoleAccounts(self.db, idle_s=600, clock=self.clock)
        self.signing = SigningSessions(keys)
        self.audit = hub.audit()
        ctx = ConsoleContext(
            AlertStore(self.db), self.accounts, self.audit, make_templates(), signing=self.signing
        )
        self.app = create_console_app(ctx)
        self.steps: dict[str, int] = {}

    def login(self, username: str) -> tuple[TestClient, str, str]:
        """A logged-in client, its CSRF token and its session key."""
        c = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        token = re.search(r'name="login_token" value="([^"]+)"', c.get("/login").text)
        assert token is not None
        # One login per user per time step: a code is accepted once.
        offset = self.steps.get(username, -1) + 1
        self.steps[username] = offset
        r = c.post(
            "/login",
            data={
                "username": username,
                "password": PASSWORD,
                "code": self.hub.code(username, step_offset=offset),
                "login_token": token.group(1),
            },
        )
        assert r.status_code == 303, r.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/alerts").text)
        assert csrf is not None
        return c, csrf.group(1), session_key(c.cookies["lfr_session"])

    def unlock(self, client: TestClient, csrf: str, passphrase: str = PASSPHRASE) -> str:
        r = client.post("/signing/unlock", data={"csrf": csrf, "passphrase": passphrase})
        assert r.status_code in (303, 400), r.text
        return client.get("/signing").text if r.status_code == 303 else r.text


@pytest.fixture
def console(tmp_path: Path) -> Iterator[SigningConsole]:
    keys = HubKeyStore.init(tmp_path / "keys", "sam", "supervisor", passphrase=PASSPHRASE)
    c = SigningConsole(make_hub(tmp_path / "hub"), keys)
    yield c
    c.audit.close()
    c.db.close()


def test_a_supervisor_unlocks_their_key_for_this_session_and_logout_locks_it(
    console: SigningConsole,
) -> None:
    client, csrf, key = console.login("sam")
    assert "Locked." in client.get("/signing").text
    page = console.unlock(client, csrf)
    assert "Unlocked: the key of <strong>sam</strong> (supervisor)" in page
    unlocked = console.signing.of_session(key)
    assert unlocked is not None and unlocked.issuer.operator == "sam"
    other, _, other_key = console.login("sam")  # a second session of sam: still locked
    assert console.signing.of_session(other_key) is None
    assert "Locked." in other.get("/signing").text

    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert console.signing.of_session(key) is None
    audit = console.hub.audit_log.read_text()
    assert '"signing.unlocked"' in audit and '"reason":"logged out"' in audit
    assert PASSPHRASE not in audit
    assert PASSPHRASE.encode() not in console.hub.db_path.read_bytes()


def test_a_user_without_an_operator_key_is_told_so(console: SigningConsole) -> None:
    client, csrf, key = console.login("olive")
    page = console.unlock(client, csrf)
    assert "there is no operator signing key for olive" in page
    assert console.signing.of_session(key) is None
    assert '"signing.unlock_refused"' in console.hub.audit_log.read_text()


def test_without_a_key_folder_the_console_signs_nothing(console: SigningConsole) -> None:
    console.signing.keys = None
    client, csrf, _ = console.login("sam")
    assert "Signing from the console is off" in client.get("/signing").text
    assert "no [keys] dir" in console.unlock(client, csrf)


def test_the_auditor_cannot_unlock(console: SigningConsole) -> None:
    client, csrf, _ = console.login("aud")
    assert client.post("/signing/unlock", data={"csrf": csrf, "passphrase": "x"}).status_code == 403


def test_an_unlocked_key_is_locked_by_the_user(console: SigningConsole) -> None:
    client, csrf, key = console.login("sam")
    console.unlock(client, csrf)
    assert client.post("/signing/lock", data={"csrf": csrf}).status_code == 303
    assert console.signing.of_session(key) is None


@pytest.mark.parametrize("ending", ["idle", "disabled", "locked out"])
def test_a_key_goes_when_its_session_may_no_longer_act(
    console: SigningConsole, ending: str
) -> None:
    client, csrf, key = console.login("sam")
    console.unlock(client, csrf)
    assert console.signing.prune(console.accounts.live_session_keys()) == []
    if ending == "idle":
        console.clock.now += 601
    elif ending == "disabled":
        console.accounts.set_disabled("sam", True)
    else:
        for _ in range(console.accounts.max_failures):
            console.accounts.login("sam", "wrong wrong wrong", "000000")
    dropped = console.signing.prune(console.accounts.live_session_keys())
    assert [d.session_key for d in dropped] == [key]
    assert console.signing.of_session(key) is None
