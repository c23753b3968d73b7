"""The Deployments page: plan a deployment, publish its public notice, record an urgent
reason, activate it, and follow it.

- Plan (operator, supervisor): a watchlist built for the hub (its deployment id is the
  one the watchlist was built for), the camera, the window, the threshold, the officer
  in charge, the place and purpose category of the public notice. The threshold is
  either stated as a target false-alert rate (e.g. 1/6000), calibrated then against the
  watchlist with the hub's cohort (``plan_calibration.py``), or given as a raw cosine
  score; audited ``deployment.planned`` with the target and the threshold.
- Publish the notice (supervisor): it appears without login at ``/notices``
  (``public_notices_page.py``); audited ``deployment.notice_published``.
- Urgent reason (supervisor): to go ahead without a notice published before the window
  start; audited ``deployment.urgent_override`` and shown in the public results.
- Activate (supervisor, own key unlocked): signs the activation with the session's key
  and sends it; refused unless the notice went out before the window start or an urgent
  reason is recorded; audited ``deployment.activated``. Its lease is ``[hold] lease_s``:
  officers must then be confirmed present on the Live page for it to go on.

Each row shows the live lease, the alerts and how many are decided, and once the camera
has reported the deployment's end, the faces it saw and a link to its report.
"""

from __future__ import annotations

import datetime as dt
import math
import time

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from agent.errors import LfrError, UsageError
from agent.hub.accounts.console_accounts import session_key
from agent.hub.calibration.threshold_calibration import parse_fpir
from agent.hub.console.access_control import allow, context
from agent.hub.console.console_context import ConsoleContext
from agent.hub.console.plan_calibration import PlanThreshold
from agent.hub.store.deployment_store import (
    PURPOSES,
    Deployment,
    DeploymentError,
    DeploymentStore,
    check_plan,
)
from agent.hub.store.device_status_store import DeviceStatusStore
from agent.hub.watchlists.hub_maps import WatchlistSummary

#: What the plan form offers as the target false-alert rate: the published operating
#: point, about 1 false alert in 6,000 faces compared.
DEFAULT_TARGET = "1/6000"
BASES = ("target", "threshold")
VIEWERS = ("operator", "supervisor", "auditor")
PLANNERS = ("operator", "supervisor")
SUPERVISORS = ("supervisor",)


def _store(ctx: ConsoleContext) -> DeploymentStore:
    return DeploymentStore(ctx.alerts.database)


def _figures(ctx: ConsoleContext, d: Deployment) -> dict[str, object]:
    counts = ctx.alerts.outcome_counts(d.device_id, d.deployment_id)
    total = sum(counts.values())
    reports = [r for r in ctx.reports.for_deployment(d.deployment_id) if r.device_id == d.device_id]
    lease = None
    if ctx.hold_desk is not None:
        lease = next(
            (v for v in ctx.hold_desk.book.leases() if v.key == (d.device_id, d.deployment_id)),
            None,
        )
    return {
        "alerts": total,
        "decided": total - counts.get(None, 0),
        "report": reports[-1] if reports else None,
        "lease": lease,
    }


def _page(request: Request, error: str = "", status: int = 200) -> Response:
    ctx = context(request)
    session = request.state.session
    plans = _store(ctx).all()
    return ctx.templates.TemplateResponse(
        request,
        "deployments.html",
        {
            "session": session,
            "plans": [(d, _figures(ctx, d)) for d in plans],
            "watchlists": ctx.hub_maps.watchlists() if ctx.hub_maps else [],
            "cameras": [f.device_id for f in DeviceStatusStore(ctx.alerts.database).fleet()],
            "purposes": PURPOSES,
            "unlocked": ctx.signing.of_session(session_key(session.token)),
            "now": time.time(),
            "default_target": DEFAULT_TARGET,
            "error": error,
        },
        status_code=status,
    )


@allow(*VIEWERS)
def deployments_page(request: Request) -> Response:
    return _page(request)


def _field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _utc_time(name: str, text: str) -> float:
    """'YYYY-MM-DDTHH:MM' (a datetime-local field, read as UTC) → Unix seconds."""
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise UsageError(f"{name}: not a date and time YYYY-MM-DDTHH:MM (UTC)") from None


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"{name}: not a number")
    return value


def _target(form: FormData) -> float | None:
    """The plan's target false-alert rate, or None for a raw threshold."""
    basis = _field(form, "basis")
    if basis not in BASES:
        raise UsageError("threshold: choose a target false-alert rate or a raw threshold")
    if basis == "threshold":
        return None
    try:
        return parse_fpir(_field(form, "target_fpir"))
    except UsageError as exc:
        raise UsageError(str(exc).replace("--target-fpir", "target false-alert rate")) from None


async def _calibrated(
    ctx: ConsoleContext, watchlist: WatchlistSummary, target: float
) -> PlanThreshold:
    if ctx.calibrator is None:
        raise UsageError(
            "target false-alert rate: this hub does not calibrate; give a threshold instead"
        )
    # Scoring the cohort (and, the first time, loading it) takes a while: off the loop.
    return await run_in_threadpool(ctx.calibrator.threshold, watchlist.file, target)


@allow(*PLANNERS)
async def plan(request: Request) -> Response:
    form = await request.form()  # already read (and bounded) by the CSRF check
    ctx = context(request)
    username = request.state.session.username
    chosen = _field(form, "watchlist")
    watchlist = next(
        (
            w
            for w in (ctx.hub_maps.watchlists() if ctx.hub_maps else [])
            if w.watchlist_hash == chosen
        ),
        None,
    )
    camera = _field(form, "camera")
    try:
        if watchlist is None:
            raise UsageError("watchlist: choose one of the hub's watchlists")
        if watchlist.devices and camera not in watchlist.devices:
            raise UsageError(f"camera: the watchlist was not built for {camera[:40]!r}")
        target = _target(form)
        d = Deployment(
            deployment_id=watchlist.deployment_id,
            device_id=camera,
            watchlist_sha256=watchlist.watchlist_hash,
            # With a target, 0.0 stands in until the calibration below replaces it.
            threshold=0.0
            if target is not None
            else _number("threshold", _field(form, "threshold")),
            window_start=_utc_time("window start", _field(form, "window_start")),
            window_end=_utc_time("window end", _field(form, "window_end")),
            officer=_field(form, "officer"),
            place=_field(form, "place"),
            purpose=_field(form, "purpose"),
            planned_by=username,
            planned_at=time.time(),
        )
        if target is not None:
            # A plan refused anyway is not worth a calibration.
            check_plan(d)
            if _store(ctx).get(d.deployment_id) is not None:
                raise DeploymentError(f"deployment {d.deployment_id}: already planned")
            t = await _calibrated(ctx, watchlist, target)
            d = d.with_calibration(t.score, t.target_fpir, t.threshold, t.calibration)
        d = _store(ctx).plan(d)
    except LfrError as exc:
        return _page(request, str(exc), 400)
    ctx.audit.record(
        "deployment.planned",
        deployment=d.deployment_id,
        device=d.device_id,
        window_start=d.window_start,
        window_end=d.window_end,
        threshold_kind=d.score,  # "score" is a field name the audit log refuses
        threshold=d.threshold,
        target_fpir=d.target_fpir,
        cohort_size=d.cohort_size,
        false_alerts=d.false_alerts,
        username=username,
    )
    return RedirectResponse("/deployments", status_code=303)


@allow(*SUPERVISORS)
def publish_notice(request: Request) -> Response:
    ctx = context(request)
    username = request.state.session.username
    try:
        d = _store(ctx).publish_notice(request.path_params["deployment_id"], username)
    except DeploymentError as exc:
        return _page(request, str(exc), 409)
    ctx.audit.record(
        "deployment.notice_published",
        deployment=d.deployment_id,
        in_time=d.notice_in_time,
        username=username,
    )
    return RedirectResponse("/deployments", status_code=303)


@allow(*SUPERVISORS)
async def urgent(request: Request) -> Response:
    form = await request.form()
    ctx = context(request)
    username = request.state.session.username
    try:
        d = _store(ctx).record_urgent(
            request.path_params["deployment_id"], _field(form, "reason"), username
        )
    except (UsageError, DeploymentError) as exc:
        return _page(request, str(exc), 400)
    ctx.audit.record(
        "deployment.urgent_override",
        deployment=d.deployment_id,
        reason=d.urgent_reason or "",
        username=username,
    )
    return RedirectResponse("/deployments", status_code=303)


@allow(*SUPERVISORS)
def activate(request: Request) -> Response:
    ctx = context(request)
    store = _store(ctx)
    d = store.get(request.path_params["deployment_id"])
    if d is None:
        return PlainTextResponse("no such deployment", status_code=404)
    if ctx.hold_desk is None:
        return _page(request, "this hub process has no broker connection", 409)
    refusal = d.activation_refusal(time.time())
    ctx.signing.prune(ctx.accounts.live_session_keys())
    unlocked = ctx.signing.of_session(session_key(request.state.session.token))
    if refusal is None and unlocked is None:
        refusal = "unlock your signing key first (Signing key page)"
    if refusal is not None or unlocked is None:
        return _page(request, refusal or "", 409)
    lease_s = ctx.hold_desk.timing.lease_s
    try:
        document = unlocked.issuer.activation(
            d.device_id,
            d.deployment_id,
            int(d.window_end - d.window_start),
            lease_s,
            d.watchlist_sha256,
            d.threshold,
            d.officer,
            not_before=int(d.window_start),
            score=d.score,
            target_fpir=d.target_fpir,
            calibration=d.calibration,
        )
        sha = ctx.hold_desk.channel.send(d.device_id, document, lease_s)
        store.mark_activated(d.deployment_id, unlocked.username, sha)
    except LfrError as exc:
        return _page(request, f"not activated: {exc}", 409)
    ctx.audit.record(
        "deployment.activated",
        deployment=d.deployment_id,
        device=d.device_id,
        urgent=d.urgent_reason is not None,
        document_sha256=sha,
        username=unlocked.username,
    )
    return RedirectResponse("/deployments", status_code=303)


routes = [
    Route("/deployments", deployments_page, methods=["GET"]),
    Route("/deployments", plan, methods=["POST"]),
    Route("/deployments/{deployment_id}/notice", publish_notice, methods=["POST"]),
    Route("/deployments/{deployment_id}/urgent", urgent, methods=["POST"]),
    Route("/deployments/{deployment_id}/activate", activate, methods=["POST"]),
]
