"""Deployment plans and their public notices (``deployment_tables.py``; SQLite and
PostgreSQL alike).

A deployment is planned with its camera, watchlist, threshold, window, officer in
charge, place and purpose category. Its public notice (place, window and purpose, and
nothing about the watchlist) is published by a supervisor. It may be activated only if
the notice was published before the window started, or a supervisor recorded an urgent
reason to go ahead without one (``activation_refusal``); it is activated once.

A plan stated as a target false-alert rate keeps the score kind, the target and the
calibration figures with it; they travel in the signed activation.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from agent.errors import LfrError, UsageError
from agent.hub.keys.activation_issuer import HUB_MAX_DURATION_S
from agent.hub.store.database import HubDatabase
from agent.hub.store.deployment_tables import deployments
from agent.protocol.topics import check_device_id
from agent.trust.activation_token import MAX_TEXT, Calibration, threshold_problem
from agent.trust.key_certificates import NAME_PATTERN

#: The purpose categories a public notice may name.
PURPOSES = (
    "wanted-for-serious-offences",
    "missing-or-vulnerable-people",
    "public-event-safety",
    "protective-orders",
)
MAX_PLACE = 120


class DeploymentError(LfrError):
    """A deployment that cannot be planned, published or activated (the message says why)."""


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    device_id: str
    watchlist_sha256: str
    threshold: float
    window_start: float
    window_end: float
    officer: str
    place: str
    purpose: str
    planned_by: str
    planned_at: float
    notice_published_by: str | None = None
    notice_published_at: float | None = None
    urgent_reason: str | None = None
    urgent_by: str | None = None
    urgent_at: float | None = None
    activated_by: str | None = None
    activated_at: float | None = None
    activation_sha256: str | None = None
    score: str = "cosine"
    target_fpir: float | None = None
    cohort_size: int | None = None
    false_alerts: int | None = None
    fpir: float | None = None
    fpir_ci_low: float | None = None
    fpir_ci_high: float | None = None

    @property
    def calibration(self) -> Calibration | None:
        """The calibration the threshold came from (None: a threshold given as such)."""
        if (
            self.cohort_size is None
            or self.false_alerts is None
            or self.fpir is None
            or self.fpir_ci_low is None
            or self.fpir_ci_high is None
        ):
            return None
        return Calibration(
            self.cohort_size, self.false_alerts, self.fpir, (self.fpir_ci_low, self.fpir_ci_high)
        )

    def with_calibration(
        self, score: str, target_fpir: float, threshold: float, c: Calibration
    ) -> Deployment:
        """This plan with its threshold calibrated for ``target_fpir``."""
        return dataclasses.replace(
            self,
            score=score,
            target_fpir=target_fpir,
            threshold=threshold,
            cohort_size=c.cohort_size,
            false_alerts=c.false_alerts,
            fpir=c.fpir,
            fpir_ci_low=c.fpir_ci95[0],
            fpir_ci_high=c.fpir_ci95[1],
        )

    @property
    def notice_in_time(self) -> bool:
        at = self.notice_published_at
        return at is not None and at < self.window_start

    def activation_refusal(self, now: float) -> str | None:
        """Why it may not be activated now, or None."""
        if self.activated_at is not None:
            return f"deployment {self.deployment_id}: already activated"
        if now >= self.window_end:
            return f"deployment {self.deployment_id}: its window is over"
        if not self.notice_in_time and self.urgent_reason is None:
            return (
                f"deployment {self.deployment_id}: its public notice was not published before "
                "the window start; a supervisor must record an urgent reason to go ahead"
            )
        return None


def _text(name: str, value: str, limit: int = MAX_TEXT) -> str:
    value = value.strip()
    if not value or len(value) > limit or not value.isprintable():
        raise UsageError(f"{name}: 1–{limit} printable characters")
    return value


def check_plan(d: Deployment) -> Deployment:
    """The plan with its text stripped; ``UsageError`` naming the first bad field."""
    if not re.fullmatch(NAME_PATTERN, d.deployment_id):
        raise UsageError(f"deployment {d.deployment_id[:40]!r}: not a deployment id")
    try:
        check_device_id(d.device_id)
    except ValueError as exc:
        raise UsageError(f"camera: {exc}") from exc
    if not re.fullmatch(r"[0-9a-f]{64}", d.watchlist_sha256):
        raise UsageError("watchlist: must be the 64 hex digit SHA-256 of a watchlist")
    if (problem := threshold_problem(d.threshold, d.score)) is not None:
        raise UsageError(problem)
    if not (math.isfinite(d.window_start) and math.isfinite(d.window_end)):
        raise UsageError("window: start and end are required")
    if not 0 < d.window_end - d.window_start <= HUB_MAX_DURATION_S:
        raise UsageError(
            f"window: the end must be after the start, at most {HUB_MAX_DURATION_S // 3600} h"
        )
    if d.purpose not in PURPOSES:
        raise UsageError(f"purpose: must be one of {', '.join(PURPOSES)}")
    return Deployment(
        **{
            **d.__dict__,
            "officer": _text("officer in charge", d.officer),
            "place": _text("place", d.place, MAX_PLACE),
        }
    )


_COLUMNS = tuple(deployments.c)


def _row(r: Any) -> Deployment:
    values = dict(r._mapping)
    values["score"] = values["score"] or "cosine"  # plans from before revision 0009
    return Deployment(**values)


class DeploymentStore:
    def __init__(self, database: HubDatabase, clock: Any = time.time) -> None:
        self.database = database
        self.clock = clock

    def plan(self, d: Deployment) -> Deployment:
        d = check_plan(d)
        try:
            with self.database.write() as db:
                db.execute(insert(deployments).values(**d.__dict__))
        except IntegrityError as exc:
            raise DeploymentError(f"deployment {d.deployment_id}: already planned") from exc
        return d

    def get(self, deployment_id: str) -> Deployment | None:
        with self.database.read() as db:
            r = db.execute(
                select(*_COLUMNS).where(deployments.c.deployment_id == deployment_id)
            ).first()
        return None if r is None else _row(r)

    def all(self) -> list[Deployment]:
        with self.database.read() as db:
            rows = db.execute(select(*_COLUMNS).order_by(deployments.c.window_start.desc())).all()
        return [_row(r) for r in rows]

    def public_notices(self) -> list[Deployment]:
        """Every deployment whose notice is published, newest window first."""
        return [d for d in self.all() if d.notice_published_at is not None]

    def _set(self, deployment_id: str, guard: Any, why: str, **values: object) -> Deployment:
        with self.database.write() as db:
            done = db.execute(
                update(deployments)
                .where(deployments.c.deployment_id == deployment_id, guard)
                .values(**values)
            )
        if done.rowcount != 1:
            if self.get(deployment_id) is None:
                raise DeploymentError(f"deployment {deployment_id[:40]!r}: not planned")
            raise DeploymentError(f"deployment {deployment_id}: {why}")
        found = self.get(deployment_id)
        assert found is not None
        return found

    def publish_notice(self, deployment_id: str, by: str) -> Deployment:
        return self._set(
            deployment_id,
            deployments.c.notice_published_at.is_(None),
            "its notice is already published",
            notice_published_by=by,
            notice_published_at=self.clock(),
        )

    def record_urgent(self, deployment_id: str, reason: str, by: str) -> Deployment:
        return self._set(
            deployment_id,
            deployments.c.urgent_reason.is_(None),
            "an urgent reason is already recorded",
            urgent_reason=_text("urgent reason", reason),
            urgent_by=by,
            urgent_at=self.clock(),
        )

    def mark_activated(self, deployment_id: str, by: str, document_sha256: str) -> Deployment:
        return self._set(
            deployment_id,
            deployments.c.activated_at.is_(None),
            "already activated",
            activated_by=by,
            activated_at=self.clock(),
            activation_sha256=document_sha256,
        )
