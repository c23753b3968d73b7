"""The public results of the deployments that ended in a period, as forces publish them:
one row per deployment report (date, camera, deployment, duration, watchlist size, faces
seen, alerts, and the alerts by adjudication outcome, how many are on legal hold, and the
urgent reason a supervisor recorded to go ahead without a public notice published before
the window start, if any). No personal data: no subject
labels, no crops, no officer or operator names — the rows are built from the reports'
aggregate figures and the count of each outcome, nothing else.

A period is two UTC dates, both included. The outcome counts come from the alerts still
stored: after the retention purge only the report's own alert count remains, and the
purged alerts count as ``purged``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import astuple, dataclass, fields

from agent.errors import UsageError
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.deployment_store import DeploymentStore
from agent.hub.store.legal_hold_store import LegalHoldStore
from agent.hub.store.report_store import DeploymentReportStore, StoredReport

TRUE_OUTCOMES = ("true-alert", "confirmed-true")
FALSE_OUTCOMES = ("false-alert", "confirmed-false")
MAX_PERIOD_DAYS = 3660
#: Characters that make a spreadsheet read a cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date

    @property
    def start(self) -> float:
        return dt.datetime.combine(self.first, dt.time(), dt.UTC).timestamp()

    @property
    def end(self) -> float:
        """The first second after the period."""
        day_after = self.last + dt.timedelta(days=1)
        return dt.datetime.combine(day_after, dt.time(), dt.UTC).timestamp()


def parse_period(first: str | None, last: str | None) -> Period:
    """The period ``first``..``last`` (YYYY-MM-DD, both included); ``UsageError`` with a
    one-line reason otherwise."""
    a, b = _date("from", first), _date("to", last)
    if b < a:
        raise UsageError(f"to: {b} is before from: {a}")
    if (b - a).days > MAX_PERIOD_DAYS:
        raise UsageError(f"period: at most {MAX_PERIOD_DAYS} days")
    return Period(a, b)


def _date(name: str, text: str | None) -> dt.date:
    if not text:
        raise UsageError(f"{name}: a date YYYY-MM-DD is required")
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{name}: not a date YYYY-MM-DD: {text[:20]!r}") from None


@dataclass(frozen=True)
class ResultRow:
    date: str
    camera: str
    deployment: str
    duration_min: int
    watchlist_size: int
    faces_seen: int
    alerts: int
    true_alerts: int
    false_alerts: int
    undecided: int
    purged: int
    #: Alerts kept past the retention period under a legal hold (count only).
    on_hold: int
    #: Why it went ahead without a public notice in advance ("" when it had one).
    urgent_override: str


#: The columns summed in the totals.
COUNTED = (
    "duration_min",
    "watchlist_size",
    "faces_seen",
    "alerts",
    "true_alerts",
    "false_alerts",
    "undecided",
    "purged",
    "on_hold",
)
COLUMNS = tuple(f.name for f in fields(ResultRow))


def public_results(
    reports: DeploymentReportStore, alerts: AlertStore, period: Period
) -> list[ResultRow]:
    holds = LegalHoldStore(alerts.database)
    plans = DeploymentStore(alerts.database)
    return [_row(r, alerts, holds, plans) for r in reports.between(period.start, period.end)]


def _int(body: dict[str, object], key: str) -> int:
    value = body.get(key)
    return int(value) if isinstance(value, int | float) else 0


def _urgent_override(plans: DeploymentStore, report: StoredReport) -> str:
    plan = plans.get(report.deployment_id)
    if plan is None or plan.device_id != report.device_id:
        return ""
    return plan.urgent_reason or ""


def _row(
    report: StoredReport, alerts: AlertStore, holds: LegalHoldStore, plans: DeploymentStore
) -> ResultRow:
    body = report.body
    closed = body.get("closed_at")
    closed_at = float(closed) if isinstance(closed, int | float) else report.received_at
    opened = body.get("opened_at")
    duration_s = closed_at - float(opened) if isinstance(opened, int | float) else 0.0
    counts = alerts.outcome_counts(report.device_id, report.deployment_id)
    reported = _int(body, "alerts")
    true_n = sum(counts.get(o, 0) for o in TRUE_OUTCOMES)
    false_n = sum(counts.get(o, 0) for o in FALSE_OUTCOMES)
    undecided = counts.get(None, 0)
    return ResultRow(
        date=dt.datetime.fromtimestamp(closed_at, dt.UTC).date().isoformat(),
        camera=report.device_id,
        deployment=report.deployment_id,
        duration_min=max(0, round(duration_s / 60)),
        watchlist_size=_int(body, "watchlist_size"),
        faces_seen=_int(body, "faces_detected"),
        alerts=reported,
        true_alerts=true_n,
        false_alerts=false_n,
        undecided=undecided,
        purged=max(0, reported - true_n - false_n - undecided),
        on_hold=holds.count_held(report.device_id, report.deployment_id),
        urgent_override=_urgent_override(plans, report),
    )


def _cell(value: object) -> str:
    text = str(value)
    # Camera text is checked against the protocol's patterns at receipt; this is the
    # second wall, for a spreadsheet that would run a formula.
    return "'" + text if text.startswith(_FORMULA_START) else text


def results_csv(rows: list[ResultRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(v) for v in astuple(row)])
    return out.getvalue()


def totals(rows: list[ResultRow]) -> dict[str, int]:
    """The period's totals of the counted columns."""
    return {c: sum(int(getattr(r, c)) for r in rows) for c in COUNTED}
