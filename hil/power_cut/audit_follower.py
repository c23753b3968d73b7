"""Follows the device's audit log as the agent appends to it, reading only what is new.

The rig waits on audit entries (the camera opened, a renewal was taken, a deployment
ended) many times per crash point; re-reading a log of tens of thousands of lines each
time would cost more than the work it waits for. After a power cut the surviving log
may be shorter than what was read: ``reset()`` starts over.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path


class AuditFollower:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._offset = 0
        self._events: list[tuple[str, dict[str, object]]] = []

    def reset(self) -> None:
        with self._lock:
            self._offset = 0
            self._events = []

    def _read_new(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].split(b"\n"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("fields"), dict):
                self._events.append((str(entry.get("event")), entry["fields"]))

    def events(self, event: str, **match: object) -> list[dict[str, object]]:
        """Fields of every entry of ``event`` whose fields include ``match``."""
        with self._lock:
            self._read_new()
            return [
                f
                for e, f in self._events
                if e == event and all(f.get(k) == v for k, v in match.items())
            ]

    def count(self, event: str, **match: object) -> int:
        return len(self.events(event, **match))
