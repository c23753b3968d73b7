"""Every table of the hub database, registered on the one ``metadata``.

A room that adds tables declares them in its own module on
``agent.hub.store.metadata.metadata``, imports that module here, and adds an Alembic
revision under ``migrations/versions/`` (``tests/hub/store/test_schema_migrations.py``
checks that the migrations build exactly these tables).
"""

from __future__ import annotations

from agent.hub.store import (
    alert_tables,
    console_tables,
    deployment_tables,
    device_status_tables,
    legal_hold_tables,
    media_tables,
    plate_tables,
    report_tables,
)
from agent.hub.store.metadata import metadata

__all__ = [
    "alert_tables",
    "console_tables",
    "deployment_tables",
    "device_status_tables",
    "legal_hold_tables",
    "media_tables",
    "metadata",
    "plate_tables",
    "report_tables",
]
