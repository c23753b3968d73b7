"""The fleet as the hub last heard it: every enrolled camera with its last status.

The status tracker (``agent/hub/devices/status_tracker.py``) records each status it
receives; a change ``device.status`` (ref: the device id) tells open fleet pages.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from agent.hub.store.alert_tables import device_keys, device_withdrawals
from agent.hub.store.conflict_insert import conflict_insert_on
from agent.hub.store.database import HubDatabase
from agent.hub.store.device_status_tables import device_status


@dataclass(frozen=True)
class FleetEntry:
    device_id: str
    enrolled_at: float
    #: None: never heard from since the hub started tracking.
    online: bool | None
    body: dict[str, Any]
    received_at: float | None

    @property
    def state(self) -> str:
        if self.online is None:
            return "unknown"
        return str(self.body.get("state", "unknown")) if self.online else "offline"


class DeviceStatusStore:
    def __init__(self, database: HubDatabase) -> None:
        self.database = database

    def record(
        self, device_id: str, online: bool, body: dict[str, Any], at: float | None = None
    ) -> None:
        values = {
            "device_id": device_id,
            "online": online,
            "body_json": json.dumps(body, sort_keys=True),
            "received_at": time.time() if at is None else at,
        }
        with self.database.write() as db:
            stmt = conflict_insert_on(db, device_status).values(**values)
            db.execute(
                stmt.on_conflict_do_update(
                    index_elements=["device_id"],
                    set_={k: v for k, v in values.items() if k != "device_id"},
                )
            )
            self.database.changes.emit(db, "device.status", device_id)

    def fleet(self) -> list[FleetEntry]:
        """Every enrolled, not withdrawn camera, by id, with its last status if any."""
        query = (
            select(
                device_keys.c.device_id,
                device_keys.c.added_at,
                device_status.c.online,
                device_status.c.body_json,
                device_status.c.received_at,
            )
            .outerjoin(device_status, device_status.c.device_id == device_keys.c.device_id)
            .where(
                ~device_keys.c.device_id.in_(select(device_withdrawals.c.device_id)),
            )
            .order_by(device_keys.c.device_id)
        )
        with self.database.read() as db:
            rows = db.execute(query).all()
        return [
            FleetEntry(
                str(r[0]),
                float(r[1]),
                None if r[2] is None else bool(r[2]),
                json.loads(r[3]) if r[3] else {},
                None if r[4] is None else float(r[4]),
            )
            for r in rows
        ]
