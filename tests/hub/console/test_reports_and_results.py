"""The reports page (list, one report, camera text escaped) and the public results per
period (printable page, CSV, ``lfr-hub results export``): outcome counts from the
adjudications, no personal data, bad dates refused with a one-line reason, every
export in the hub audit log. Real SQLite hub database, Starlette TestClient."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.alert_factory import AlertKeys
from support.hub_console import make_hub
from test_route_roles import Console

from agent.cli.hub_main import main as hub_main
from agent.hub.console.console_context import make_templates
from agent.hub.store.legal_hold_store import LegalHoldStore
from agent.hub.store.report_store import DeploymentReportStore, StoredReport
from agent.runtime.deployment_report import DeploymentReport, sign_report

DEPLOYMENT = "dep-2026-11-22-a"  # the deployment of support.alert_factory's alerts
DEVICE = "lfr-test-01"
OFFICER = "Inspector Morse"
DAY = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    c = Console(make_hub(tmp_path))
    yield c
    c.close()


def store_report(
    console: Console,
    *,
    deployment: str = DEPLOYMENT,
    closed_at: float = DAY + 2 * 3600,
    alerts: int = 4,
    seq: int = 1,
) -> None:
    report = DeploymentReport(
        device_id=DEVICE,
        deployment_id=deployment,
        activation_sequence=seq,
        signer="op-key-1",
        officer=OFFICER,
        not_before=int(closed_at - 3 * 3600),
        not_after=int(closed_at + 3600),
        opened_at=closed_at - 90 * 60,
        closed_at=closed_at,
        end_reason="stopped",
        watchlist_sha256="ab" * 32,
        watchlist_size=312,
        threshold=0.6,
        detector_model="yunet-2023mar-fp32:0123abcd",
        embedder_model="sface-2021dec-fp32:0123abcd",
        frames=40000,
        frames_dropped=12,
        faces_detected=5123,
        faces_passed_quality=4000,
        faces_compared=3900,
        embeddings=3900,
        tracks=700,
        alerts=alerts,
        software_version="0.1.0",
    )
    envelope = sign_report(report, AlertKeys.generate().device)
    stored = DeploymentReportStore(console.db).add(report.body(), envelope, closed_at + 60)
    assert stored


def test_reports_list_and_one_report(console: Console) -> None:
    store_report(console)
    client, _ = console.login("aud")
    page = client.get("/reports").text
    link = f"/reports/{DEVICE}/{DEPLOYMENT}/1"
    assert f'href="{link}"' in page and "5123" in page
    one = client.get(link)
    assert one.status_code == 200
    assert "faces_detected" in one.text and "312" in one.text and "ack_box" not in one.text
    assert client.get(f"/reports/{DEVICE}/{DEPLOYMENT}/2").status_code == 404
    assert client.get(f"/reports/{DEVICE}/nope/1").status_code == 404


def test_report_camera_text_is_escaped() -> None:
    hostile = StoredReport(
        "cam<img src=x onerror=y()>",
        "dep<script>x()</script>\u202e",
        1,
        DAY,
        {"end_reason": "<script>x()</script>", "closed_at": DAY, "alerts": 1},
    )
    templates = make_templates()
    for name, values in (
        ("reports.html", {"reports": [hostile]}),
        ("report.html", {"report": hostile, "fields": sorted(hostile.body.items())}),
    ):
        html = templates.get_template(name).render(session=None, **values)
        assert "<script>x()" not in html and "&lt;script&gt;" in html
        assert "<img src=x" not in html and "\u202e" not in html


def _adjudicated_alerts(console: Console) -> None:
    rows = [console.store_alert(n=n) for n in (1, 2, 3)]
    client, csrf = console.login("olive")
    for row, outcome in zip(rows, ("true-alert", "false-alert"), strict=False):
        r = client.post(f"/alerts/{row}/adjudicate", data={"csrf": csrf, "outcome": outcome})
        assert r.status_code == 303


def test_results_csv_counts_outcomes_and_holds_no_personal_data(console: Console) -> None:
    _adjudicated_alerts(console)
    LegalHoldStore(console.db).hold(console.store.list_alerts()[0].row_id, "CASE-77", "sam")
    store_report(console)  # 4 alerts reported: 3 stored, so one counts as purged
    store_report(console, deployment="dep-before", closed_at=DAY - 86400)
    store_report(console, deployment="dep-after", closed_at=DAY + 86400)
    client, _ = console.login("aud")
    r = client.get("/results.csv?from=2026-11-22&to=2026-11-22")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows == [
        {
            "date": "2026-11-22",
            "camera": DEVICE,
            "deployment": DEPLOYMENT,
            "duration_min": "90",
            "watchlist_size": "312",
            "faces_seen": "5123",
            "alerts": "4",
            "true_alerts": "1",
            "false_alerts": "1",
            "undecided": "1",
            "purged": "1",
            "on_hold": "1",
            "urgent_override": "",
        }
    ]
    for personal in ("W-0001", OFFICER, "olive", "sam", "op-key-1", "CASE-77"):
        assert personal not in r.text
    wider = client.get("/results.csv?from=2026-11-21&to=2026-11-23").text
    assert [row["deployment"] for row in csv.DictReader(io.StringIO(wider))] == [
        "dep-before",
        DEPLOYMENT,
        "dep-after",
    ]
    log = console.hub.audit_log.read_bytes()
    assert log.count(b'"event":"results.exported"') == 2 and b'"format":"csv"' in log


def test_results_page_is_printable_html(console: Console) -> None:
    store_report(console)
    client, _ = console.login("olive")
    page = client.get("/results?from=2026-11-22&to=2026-11-30")
    assert page.status_code == 200
    assert "results 2026-11-22 to 2026-11-30" in page.text and "<td>5123</td>" in page.text
    assert OFFICER not in page.text
    assert client.get("/results").status_code == 200  # the last 31 days by default
    assert b'"format":"html"' in console.hub.audit_log.read_bytes()


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "from: a date YYYY-MM-DD is required"),
        ("?from=2026-11-22", "to: a date YYYY-MM-DD is required"),
        ("?from=22/11/2026&to=2026-11-23", "from: not a date YYYY-MM-DD: '22/11/2026'"),
        ("?from=2026-02-30&to=2026-03-01", "from: not a date"),
        ("?from=2026-11-23&to=2026-11-22", "to: 2026-11-22 is before from: 2026-11-23"),
        ("?from=1900-01-01&to=2026-11-22", "period: at most"),
    ],
)
def test_bad_dates_are_refused(console: Console, query: str, reason: str) -> None:
    client, _ = console.login("aud")
    r = client.get("/results.csv" + query)
    assert r.status_code == 400 and r.text.startswith(reason) and "\n" not in r.text
    if query:
        assert client.get("/results" + query).status_code == 400
    assert b"results.exported" not in console.hub.audit_log.read_bytes()


def test_results_export_cli(
    console: Console, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _adjudicated_alerts(console)
    store_report(console)
    config = str(console.hub.root / "hub.toml")
    period = ["--from", "2026-11-01", "--to", "2026-11-30"]
    out_csv, out_html = tmp_path / "r.csv", tmp_path / "r.html"
    assert hub_main(["results", "export", "--config", config, *period, "--csv", str(out_csv)]) == 0
    assert (
        hub_main(["results", "export", "--config", config, *period, "--html", str(out_html)]) == 0
    )
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [(r["deployment"], r["true_alerts"], r["false_alerts"]) for r in rows] == [
        (DEPLOYMENT, "1", "1")
    ]
    html = out_html.read_text()
    assert "<td>5123</td>" in html and "W-0001" not in html and "csrf" not in html
    bad = ["results", "export", "--config", config, "--from", "2026-13-01", "--to", "2026-11-30"]
    assert hub_main([*bad, "--csv", str(tmp_path / "bad.csv")]) != 0
    assert "from: not a date YYYY-MM-DD: '2026-13-01'" in capsys.readouterr().err
    assert not (tmp_path / "bad.csv").exists()
    log = console.hub.audit_log.read_bytes()
    assert log.count(b'"event":"results.exported"') == 2 and b'"username":"cli:' in log
