"""Legal holds from the console: a supervisor holds an alert with a case reference
(refused without one, nothing held), the alert page and the queue show "on hold (case
REF)", the retention purge keeps it, the release lets the purge delete it; both are in
the hub audit log under the logged-in user. Real hub database on SQLite and PostgreSQL
(``hub_db_url``), Starlette TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.hub_console import make_hub
from test_route_roles import Console

from agent.cli.hub_main import main as hub_main
from agent.hub.console.console_context import make_templates
from agent.hub.store.legal_hold_store import LegalHold, LegalHoldStore


@pytest.fixture
def console(tmp_path: Path, hub_db_url: str) -> Iterator[Console]:
    c = Console(make_hub(tmp_path, database_url=hub_db_url), hub_db_url)
    yield c
    c.close()


def test_hold_is_shown_kept_by_the_purge_then_released(
    console: Console, hub_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    held, free = console.store_alert(n=1), console.store_alert(n=2)
    client, csrf = console.login("sam")  # supervisor
    assert "Put on legal hold" in client.get(f"/alerts/{held}").text
    r = client.post(f"/alerts/{held}/hold", data={"csrf": csrf, "case_ref": "CROY/2026/0042"})
    assert r.status_code == 303
    page = client.get(f"/alerts/{held}").text
    assert "on hold (case CROY/2026/0042)" in page and "Release the legal hold" in page
    rows = client.get("/alerts/rows").text
    assert rows.count("on hold (case CROY/2026/0042)") == 1
    # The retention purge, as `lfr-hub alerts purge` runs it: the held alert stays.
    purge = ["alerts", "purge", "--db", hub_db_url, "--older-than", "0m"]
    assert hub_main(purge) == 0
    assert (
        "purged 1 alerts" in (out := capsys.readouterr().out) and "1 kept under legal hold" in out
    )
    assert [a.row_id for a in console.store.list_alerts()] == [held]
    assert client.get(f"/alerts/{free}").status_code == 404
    r = client.post(f"/alerts/{held}/release", data={"csrf": csrf})
    assert r.status_code == 303
    assert "on hold" not in client.get(f"/alerts/{held}").text
    assert hub_main(purge) == 0
    assert console.store.list_alerts() == []
    log = console.hub.audit_log.read_bytes()
    assert b'"event":"alert.held"' in log and b'"event":"alert.hold_released"' in log
    assert b'"case_ref":"CROY/2026/0042"' in log and b'"username":"sam"' in log


@pytest.mark.parametrize("form", [{}, {"case_ref": ""}, {"case_ref": "  "}, {"case_ref": "<b>"}])
def test_a_hold_without_a_case_reference_is_refused(console: Console, form: dict[str, str]) -> None:
    row = console.store_alert()
    client, csrf = console.login("sam")
    r = client.post(f"/alerts/{row}/hold", data={"csrf": csrf, **form})
    assert r.status_code == 400 and r.text.startswith("case reference:") and "\n" not in r.text
    assert LegalHoldStore(console.db).active(row) is None
    assert b"alert.held" not in console.hub.audit_log.read_bytes()


def test_operators_see_a_hold_but_cannot_place_or_release_one(console: Console) -> None:
    row = console.store_alert()
    LegalHoldStore(console.db).hold(row, "CASE-9", "sam")
    client, csrf = console.login("olive")  # operator
    page = client.get(f"/alerts/{row}").text
    assert "on hold (case CASE-9)" in page and "Release the legal hold" not in page
    assert client.post(f"/alerts/{row}/release", data={"csrf": csrf}).status_code == 403
    assert LegalHoldStore(console.db).active(row) is not None
    sup, sup_csrf = console.login("sam")
    again = sup.post(f"/alerts/{row}/hold", data={"csrf": sup_csrf, "case_ref": "CASE-10"})
    assert again.status_code == 409 and "already on hold" in again.text


def test_case_reference_is_escaped_in_the_pages(console: Console) -> None:
    # Case references are checked when a hold is placed; the templates are the second wall.
    row = console.store.get_row(console.store_alert())
    hold = LegalHold(row.row_id, "<script>x()</script>", "<b>sam</b>", 1.0, None, None)
    templates = make_templates()
    for name, values in (
        ("alert_queue_rows.html", {"rows": [row], "holds": {row.row_id: hold}}),
        (
            "alert_review.html",
            {
                "alert": row,
                "has_scene": False,
                "history": [],
                "outcomes": (),
                "may_decide": False,
                "clip": None,
                "entry": None,
                "hold": hold,
            },
        ),
    ):
        html = templates.get_template(name).render(session=None, **values)
        assert "<script>x()" not in html and "on hold (case &lt;script&gt;" in html
        assert "<b>sam" not in html
