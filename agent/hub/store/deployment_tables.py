"""The deployment plan table of the hub database (newest revision).

``deployments``: one row per planned deployment, keyed by its deployment id (the id its
watchlist was built for): the camera, the watchlist's hash, the threshold, the window,
the officer in charge, the place and purpose category of its public notice, who planned
it and when; for a plan stated as a target false-alert rate, the score kind, the target
and the calibration figures (cohort size, its false alerts, the FPIR and its 95 % interval);
when a supervisor published the notice, recorded an urgent reason to go
ahead without a notice published in time, and activated it (with the SHA-256 of the
signed activation that was sent).
"""

from __future__ import annotations

from sqlalchemy import Column, Double, Integer, Table

from agent.hub.store.metadata import Seconds, Str, metadata

deployments = Table(
    "deployments",
    metadata,
    Column("deployment_id", Str, primary_key=True),
    Column("device_id", Str, nullable=False, index=True),
    Column("watchlist_sha256", Str, nullable=False),
    Column("threshold", Double(), nullable=False),
    Column("window_start", Seconds, nullable=False),
    Column("window_end", Seconds, nullable=False),
    Column("officer", Str, nullable=False),
    Column("place", Str, nullable=False),
    Column("purpose", Str, nullable=False),
    Column("planned_by", Str, nullable=False),
    Column("planned_at", Seconds, nullable=False),
    Column("notice_published_by", Str, nullable=True),
    Column("notice_published_at", Seconds, nullable=True),
    Column("urgent_reason", Str, nullable=True),
    Column("urgent_by", Str, nullable=True),
    Column("urgent_at", Seconds, nullable=True),
    Column("activated_by", Str, nullable=True),
    Column("activated_at", Seconds, nullable=True),
    Column("activation_sha256", Str, nullable=True),
    # Revision 0009: the calibration of a plan stated as a target false-alert rate.
    Column("score", Str, nullable=True),  # None: a cosine score
    Column("target_fpir", Double(), nullable=True),
    Column("cohort_size", Integer(), nullable=True),
    Column("false_alerts", Integer(), nullable=True),
    Column("fpir", Double(), nullable=True),
    Column("fpir_ci_low", Double(), nullable=True),
    Column("fpir_ci_high", Double(), nullable=True),
)
