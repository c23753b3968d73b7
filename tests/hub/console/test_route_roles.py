"""Every console route is guarded: no route without declared roles, anonymous callers
refused, a role not listed refused (403), a POST without the session's CSRF token
refused; security headers on every response; camera text escaped; images only by
row id, never cached. Starlette's TestClient against the real app and a real SQLite
hub database."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from support.alert_factory import FAKE_JPEG, AlertKeys, make_content
from support.hub_console import PASSWORD, USERS, HubSetup, make_hub

from agent.hub.accounts.console_accounts import ConsoleAccounts
from agent.hub.console.access_control import ROLES_OF
from agent.hub.console.console_app import create_console_app
from agent.hub.console.console_context import ConsoleContext, make_templates
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.database import HubDatabase
from agent.hub.store.legal_hold_store import LegalHoldStore
from agent.hub.store.media_store import ClipRow
from agent.hub.watchlists.hub_maps import HubMaps
from agent.trust.alert_envelope import open_alert, seal_alert

KEYS = AlertKeys.generate()
#: Routes anyone may reach (the login form and the public notices).
PUBLIC = {
    ("/login", "GET"),
    ("/login", "POST"),
    ("/notices", "GET"),
    ("/notices.json", "GET"),
}
#: Who may call each guarded route; every route of the app must be listed.
EXPECTED = {
    ("/logout", "POST"): {"operator", "supervisor", "auditor"},
    ("/", "GET"): {"operator", "supervisor", "auditor"},
    ("/alerts", "GET"): {"operator", "supervisor", "auditor"},
    ("/alerts/rows", "GET"): {"operator", "supervisor", "auditor"},
    ("/alerts/events", "GET"): {"operator", "supervisor", "auditor"},
    ("/alerts/{row_id:int}", "GET"): {"operator", "supervisor", "auditor"},
    ("/alerts/{row_id:int}/probe.jpg", "GET"): {"operator", "supervisor", "auditor"},
    ("/alerts/{row_id:int}/scene.jpg", "GET"): {"operator", "supervisor", "auditor"},
    ("/alerts/{row_id:int}/clip.mp4", "GET"): {"operator", "supervisor", "auditor"},
    ("/alerts/{row_id:int}/reference/{n:int}", "GET"): {"operator", "supervisor", "auditor"},
    ("/alerts/{row_id:int}/adjudicate", "POST"): {"operator", "supervisor"},
    ("/alerts/{row_id:int}/hold", "POST"): {"supervisor"},
    ("/alerts/{row_id:int}/release", "POST"): {"supervisor"},
    ("/plates", "GET"): {"operator", "supervisor", "auditor"},
    ("/plates/rows", "GET"): {"operator", "supervisor", "auditor"},
    ("/plates/events", "GET"): {"operator", "supervisor", "auditor"},
    ("/plates/{row_id:int}", "GET"): {"operator", "supervisor", "auditor"},
    ("/plates/{row_id:int}/plate.jpg", "GET"): {"operator", "supervisor", "auditor"},
    ("/plates/{row_id:int}/vehicle.jpg", "GET"): {"operator", "supervisor", "auditor"},
    ("/plates/{row_id:int}/adjudicate", "POST"): {"operator", "supervisor"},
    ("/fleet", "GET"): {"operator", "supervisor", "auditor"},
    ("/fleet/rows", "GET"): {"operator", "supervisor", "auditor"},
    ("/fleet/events", "GET"): {"operator", "supervisor", "auditor"},
    ("/reports", "GET"): {"operator", "supervisor", "auditor"},
    ("/reports/{device_id}/{deployment_id}/{seq:int}", "GET"): {
        "operator",
        "supervisor",
        "auditor",
    },
    ("/results", "GET"): {"operator", "supervisor", "auditor"},
    ("/results.csv", "GET"): {"operator", "supervisor", "auditor"},
    ("/deployments", "GET"): {"operator", "supervisor", "auditor"},
    ("/deployments", "POST"): {"operator", "supervisor"},
    ("/deployments/{deployment_id}/notice", "POST"): {"supervisor"},
    ("/deployments/{deployment_id}/urgent", "POST"): {"supervisor"},
    ("/deployments/{deployment_id}/activate", "POST"): {"supervisor"},
    ("/live", "GET"): {"operator", "supervisor", "auditor"},
    ("/live/rows", "GET"): {"operator", "supervisor", "auditor"},
    ("/live/{device_id}/{deployment_id}/confirm", "POST"): {"operator", "supervisor"},
    ("/live/{device_id}/{deployment_id}/stop", "POST"): {"operator", "supervisor"},
    ("/signing", "GET"): {"operator", "supervisor"},
    ("/signing/unlock", "POST"): {"operator", "supervisor"},
    ("/signing/lock", "POST"): {"operator", "supervisor"},
}


class Console:
    def __init__(self, hub: HubSetup, database_url: str | None = None) -> None:
        self.hub = hub
        self.db = HubDatabase(database_url or str(hub.db_path))
        self.store = AlertStore(self.db)
        self.audit = hub.audit()
        self.maps_dir = hub.root / "watchlists"
        ctx = ConsoleContext(
            self.store,
            ConsoleAccounts(self.db),
            self.audit,
            make_templates(),
            HubMaps(self.maps_dir),
        )
        self.app = create_console_app(ctx)
        self.steps: dict[str, int] = {}

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="https://testserver", follow_redirects=False)

    def login(self, username: str) -> tuple[TestClient, str]:
        c = self.client()
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
        page = c.get("/alerts", headers={"accept": "text/html"})
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        return c, csrf.group(1)

    def store_alert(self, device_id: str = "lfr-test-01", n: int = 1) -> int:
        self.store.register_device_key(device_id, KEYS.device.public_key())
        sealed = seal_alert(
            make_content(device_id, n, scene=True),
            seq=n,
            device_key=KEYS.device,
            hub_key=KEYS.hub.public_key(),
        )
        opened = open_alert(
            sealed.envelope, sender=device_id, device_key=KEYS.device.public_key(), hub_key=KEYS.hub
        )
        self.store.store_alert(opened, key=KEYS.device.public_key())
        return self.store.get(opened.header.alert_id, device_id=device_id).row_id

    def close(self) -> None:
        self.audit.close()
        self.db.close()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    c = Console(make_hub(tmp_path))
    yield c
    c.close()


def _url(path: str, row: int) -> str:
    for param, value in (
        ("{row_id:int}", str(row)),
        ("{n:int}", "0"),
        ("{device_id}", "lfr-test-01"),
        ("{deployment_id}", "dep-2026-11-22-a"),
        ("{seq:int}", "1"),
    ):
        path = path.replace(param, value)
    return path


def _app_routes(console: Console) -> set[tuple[str, str]]:
    found = set()
    for r in console.app.routes:
        if isinstance(r, Mount):
            continue
        assert isinstance(r, Route)
        for method in (r.methods or set()) - {"HEAD"}:
            found.add((r.path, method))
            if (r.path, method) not in PUBLIC:
                assert ROLES_OF.get(r.endpoint) == EXPECTED[(r.path, method)], r.path
    return found


def test_every_route_is_listed_with_its_roles(console: Console) -> None:
    assert _app_routes(console) == set(EXPECTED) | PUBLIC


@pytest.mark.parametrize(("path", "method"), sorted(EXPECTED))
def test_anonymous_is_refused(console: Console, path: str, method: str) -> None:
    row = console.store_alert()
    url = _url(path, row)
    r = console.client().request(method, url, data={"csrf": "x"} if method == "POST" else None)
    assert r.status_code == 401
    page = console.client().get(url, headers={"accept": "text/html"}) if method == "GET" else None
    assert page is None or (page.status_code == 303 and page.headers["location"] == "/login")


@pytest.mark.parametrize(
    ("path", "method", "role"),
    sorted(
        (p, m, role) for (p, m), roles in EXPECTED.items() for role in set(USERS.values()) - roles
    ),
)
def test_wrong_role_is_refused(console: Console, path: str, method: str, role: str) -> None:
    row = console.store_alert()
    user = next(u for u, r in USERS.items() if r == role)
    client, csrf = console.login(user)
    url = _url(path, row)
    form = {"csrf": csrf, "outcome": "true-alert", "case_ref": "CASE-1"}
    r = client.request(method, url, data=form)
    assert r.status_code == 403
    assert console.store.get_row(row).outcome is None
    assert LegalHoldStore(console.db).active(row) is None


def test_post_without_the_csrf_token_is_refused(console: Console) -> None:
    row = console.store_alert()
    client, _ = console.login("olive")
    for form in ({"outcome": "true-alert"}, {"outcome": "true-alert", "csrf": "forged"}):
        r = client.post(f"/alerts/{row}/adjudicate", data=form)
        assert r.status_code == 403 and "CSRF" in r.text
    assert console.store.get_row(row).outcome is None


@pytest.fixture
def console_on_each_engine(tmp_path: Path, hub_db_url: str) -> Iterator[Console]:
    c = Console(make_hub(tmp_path, database_url=hub_db_url), hub_db_url)
    yield c
    c.close()


def test_adjudication_names_the_logged_in_user(console_on_each_engine: Console) -> None:
    console = console_on_each_engine
    row = console.store_alert()
    client, csrf = console.login("olive")
    r = client.post(
        f"/alerts/{row}/adjudicate",
        data={"csrf": csrf, "outcome": "false-alert", "note": "not him", "by": "someone else"},
    )
    assert r.status_code == 303
    got = console.store.get_row(row)
    assert (got.outcome, got.outcome_by) == ("false-alert", "olive")
    assert b'"event":"alert.adjudicated"' in console.hub.audit_log.read_bytes()


def test_login_failures_are_generic_and_audited(console: Console) -> None:
    c = console.client()
    token = re.search(r'name="login_token" value="([^"]+)"', c.get("/login").text)
    assert token is not None
    form = {"username": "olive", "password": "wrong wrong wrong", "code": "123456"}
    r = c.post("/login", data={**form, "login_token": token.group(1)})
    assert r.status_code == 401 and "Login failed" in r.text
    r = c.post("/login", data={**form, "login_token": "forged"})
    assert r.status_code == 403
    assert b'"event":"console.login_refused"' in console.hub.audit_log.read_bytes()


def test_cookies_headers_and_images(console: Console) -> None:
    row = console.store_alert()
    client, _ = console.login("olive")
    r = client.get(f"/alerts/{row}/probe.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get(f"/alerts/{row + 99}/probe.jpg").status_code == 404
    assert client.get("/alerts/../../etc/passwd").status_code == 404
    fresh = console.client()
    token = re.search(r'name="login_token" value="([^"]+)"', fresh.get("/login").text)
    assert token is not None
    r = fresh.post(
        "/login",
        data={
            "username": "sam",
            "password": PASSWORD,
            "code": console.hub.code("sam"),
            "login_token": token.group(1),
        },
    )
    cookie = r.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_camera_text_is_escaped(console: Console) -> None:
    # A missing-clip notice's reason is camera text too.
    hostile_notice = ClipRow(
        1, "00" * 16, "missing", "<script>x()</script>\u202e", "", 0, 0, 0, 0.0, 1.0, 1.0, 1.0
    )
    # Fields are checked against the protocol's patterns at receipt, so a hostile text
    # cannot reach the store today; the templates are the second wall and are checked
    # on their own with a row as a stolen camera would want it.
    row = console.store.get_row(console.store_alert())
    hostile = dataclasses.replace(
        row,
        watchlist_entry='<script>x()</script>"\u202e',
        device_id="cam<img src=x onerror=y()>",
        outcome="true-alert",
        outcome_by="<b>op</b>",
    )
    templates = make_templates()
    for name, extra in (
        ("alert_queue_rows.html", {}),
        (
            "alert_review.html",
            {
                "has_scene": True,
                "history": [],
                "outcomes": (),
                "may_decide": False,
                "clip": hostile_notice,
                "entry": None,
            },
        ),
    ):
        html = templates.get_template(name).render(
            rows=[hostile], alert=hostile, session=None, **extra
        )
        assert "<script>x()" not in html and "&lt;script&gt;" in html
        assert "<img src=x" not in html and "<b>op" not in html
        assert "\u202e" not in html and "\\u202e" in html


def test_review_shows_the_hub_map_entry_and_its_photos(console: Console) -> None:
    row = console.store.get_row(console.store_alert())
    photo = console.hub.root / "ref-photos" / "1.jpg"
    photo.parent.mkdir()
    photo.write_bytes(FAKE_JPEG)
    not_an_image = console.hub.root / "ref-photos" / "notes.txt"
    not_an_image.write_text("secret")
    console.maps_dir.mkdir()
    refs = {
        row.watchlist_entry: {
            "subject": "Subject <One>",
            "category": "wanted",
            "photos": [str(photo), str(not_an_image)],
        }
    }
    hub_map = {"deployment_id": row.deployment_id, "refs": refs}
    (console.maps_dir / "dep.watchlist.hub-map.json").write_text(json.dumps(hub_map))
    (console.maps_dir / "other.watchlist.hub-map.json").write_text("{not json")
    client, _ = console.login("olive")
    page = client.get(f"/alerts/{row.row_id}").text
    assert "Subject &lt;One&gt; (wanted)" in page
    assert f'src="/alerts/{row.row_id}/reference/0"' in page
    r = client.get(f"/alerts/{row.row_id}/reference/0")
    assert r.status_code == 200 and r.content == FAKE_JPEG
    assert r.headers["content-type"] == "image/jpeg" and r.headers["cache-control"] == "no-store"
    assert client.get(f"/alerts/{row.row_id}/reference/1").status_code == 404  # not an image
    assert client.get(f"/alerts/{row.row_id}/reference/2").status_code == 404


def test_logins_from_one_address_are_rate_limited(console: Console) -> None:
    c = console.client()
    token = re.search(r'name="login_token" value="([^"]+)"', c.get("/login").text)
    assert token is not None
    codes, login_token = [], token.group(1)
    for n in range(12):
        form = {"username": f"user{n}", "password": "wrong wrong wrong", "code": "123456"}
        r = c.post("/login", data={**form, "login_token": login_token})
        codes.append(r.status_code)
        fresh = re.search(r'name="login_token" value="([^"]+)"', r.text)
        login_token = fresh.group(1) if fresh else login_token  # each form has its own token
    assert codes == [401] * 10 + [429] * 2
    assert b'"reason":"rate limited"' in console.hub.audit_log.read_bytes()
