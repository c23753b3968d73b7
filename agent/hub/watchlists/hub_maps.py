"""Finding who an alert's watchlist entry is: the hub maps ``lfr-hub watchlist build``
writes (``OUT.hub-map.json``: entry reference → subject, category, reference photo
paths) kept in one folder the hub config names (``watchlists.maps_dir``). The maps
``lfr-hub hotlist build`` writes (entry reference → plate, reason, category, expiry)
may be kept there too: a plate hit's entry is looked up in them (``hotlist_entry``).

An alert names its deployment and entry reference; the map of that deployment
holding that reference answers. Photos are read from the paths the map recorded
(written by the hub, mode 0600), never from a path a request names, and only when
the file is a JPEG or PNG. A map that cannot be read is skipped with a log line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from agent.hub.watchlists.watchlist_builder import MAP_SUFFIX

log = logging.getLogger(__name__)
MAX_MAP_BYTES = 64 * 1024 * 1024
IMAGE_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


@dataclass(frozen=True)
class WatchlistEntry:
    subject: str
    category: str
    photos: tuple[Path, ...]


@dataclass(frozen=True)
class HotlistEntry:
    """Why a plate is listed; the listed plate itself is not carried (the hit holds
    the plate as read)."""

    reason: str
    category: str
    expires_at: float | None


@dataclass(frozen=True)
class WatchlistSummary:
    """What a deployment plan needs of a built watchlist (no entry of it)."""

    file: str
    watchlist_hash: str
    deployment_id: str
    devices: tuple[str, ...]
    entries: int
    expires_at: float


class HubMaps:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _maps(self) -> list[tuple[Path, dict[str, object]]]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob(f"*{MAP_SUFFIX}")):
            try:
                if path.stat().st_size > MAX_MAP_BYTES:
                    continue
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("hub map %s skipped: %s", path, exc)
                continue
            if isinstance(doc, dict):
                found.append((path, doc))
        return found

    def watchlists(self) -> list[WatchlistSummary]:
        """Every watchlist built for the hub, by file name."""
        found = []
        for path, doc in self._maps():
            devices, entries, expires = (
                doc.get("devices"),
                doc.get("entries"),
                doc.get("expires_at"),
            )
            summary = WatchlistSummary(
                path.name.removesuffix(MAP_SUFFIX),
                str(doc.get("watchlist_hash", "")),
                str(doc.get("deployment_id", "")),
                tuple(str(d) for d in devices) if isinstance(devices, list) else (),
                entries if isinstance(entries, int) else 0,
                float(expires) if isinstance(expires, int | float) else 0.0,
            )
            if summary.watchlist_hash and summary.deployment_id:
                found.append(summary)
        return found

    def entry(self, deployment_id: str, ref: str) -> WatchlistEntry | None:
        """The entry ``ref`` of the map built for ``deployment_id``, or None."""
        for _, doc in self._maps():
            if doc.get("deployment_id") != deployment_id:
                continue
            refs = doc.get("refs")
            found = refs.get(ref) if isinstance(refs, dict) else None
            if isinstance(found, dict):
                photos = tuple(Path(p) for p in found.get("photos", []) if isinstance(p, str))
                return WatchlistEntry(
                    str(found.get("subject", "")), str(found.get("category", "")), photos
                )
        return None

    def hotlist_entry(self, deployment_id: str, ref: str) -> HotlistEntry | None:
        """The entry ``ref`` of the hotlist map built for ``deployment_id``, or None."""
        for _, doc in self._maps():
            if "hotlist_hash" not in doc or doc.get("deployment_id") != deployment_id:
                continue
            refs = doc.get("refs")
            found = refs.get(ref) if isinstance(refs, dict) else None
            if isinstance(found, dict):
                expires = found.get("expires_at")
                return HotlistEntry(
                    str(found.get("reason", "")),
                    str(found.get("category", "")),
                    float(expires) if isinstance(expires, int | float) else None,
                )
        return None


def reference_image(photo: Path) -> tuple[bytes, str] | None:
    """A reference photo's bytes and content type, or None (missing, not JPEG/PNG)."""
    try:
        data = photo.read_bytes()
    except OSError:
        return None
    for magic, media_type in IMAGE_TYPES.items():
        if data.startswith(magic):
            return data, media_type
    return None
