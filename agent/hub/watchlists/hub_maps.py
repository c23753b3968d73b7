"""Finding who an alert's watchlist entry is: the hub maps ``lfr-hub watchlist build``
writes (``OUT.hub-map.json``: entry reference → subject, category, reference photo
paths) kept in one folder the hub config names (``watchlists.maps_dir``).

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


class HubMaps:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def entry(self, deployment_id: str, ref: str) -> WatchlistEntry | None:
        """The entry ``ref`` of the map built for ``deployment_id``, or None."""
        if not self.folder.is_dir():
            return None
        for path in sorted(self.folder.glob(f"*{MAP_SUFFIX}")):
            try:
                if path.stat().st_size > MAX_MAP_BYTES:
                    continue
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("hub map %s skipped: %s", path, exc)
                continue
            if not isinstance(doc, dict) or doc.get("deployment_id") != deployment_id:
                continue
            found = (doc.get("refs") or {}).get(ref)
            if isinstance(found, dict):
                photos = tuple(Path(p) for p in found.get("photos", []) if isinstance(p, str))
                return WatchlistEntry(
                    str(found.get("subject", "")), str(found.get("category", "")), photos
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
