"""Clips and recording segments at the hub (tables: ``media_tables.py``).

A clip or segment becomes visible only complete: after its chunks were joined, the box
matched the SHA-256 its signed manifest names, it decrypted and the video decoded
(``agent/hub/intake/media_receiver.py``). Partial transfers stay in the staging tables,
which nothing shows. A clip belongs to its alert's row and is deleted with it, so the
alert retention purge (and anything that holds an alert) covers it; segments have their
own retention (``purge``), recorded in ``evidence_purges``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import LfrError
from agent.hub.store.conflict_insert import conflict_insert, conflict_insert_on
from agent.hub.store.database import HubDatabase
from agent.hub.store.database_engine import describe_error
from agent.hub.store.media_tables import (
    alert_clips,
    evidence_purges,
    evidence_requests,
    evidence_segments,
    media_chunks,
    media_transfers,
)
from agent.trust.sealed_media import MediaManifest, OpenedMedia


class MediaStoreError(LfrError):
    """The media tables cannot be used or do not hold what was asked for."""


@dataclass(frozen=True)
class ClipRow:
    alert_row_id: int
    media_id: str
    state: str  # "complete" or "missing"
    reason: str
    sha256: str
    frames: int
    width: int
    height: int
    fps: float
    start: float
    end: float
    received_at: float
    mp4: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SegmentRow:
    media_id: str
    device_id: str
    deployment_id: str
    start: float
    end: float
    size: int
    frames: int
    received_at: float


@functools.cache
def _clip_upsert(dialect_name: str) -> Any:
    """Store a complete clip, replacing a "missing" note (never a complete clip).

    Built once per dialect, its values bound at execution. A statement's ``excluded`` is
    a new alias of the table: fourteen column proxies in reference cycles. The hub makes
    them while its SQLite write syncs to disk, so they outlive the young collections
    and wait for the collector's rare full passes. Built for every clip, they grew the
    hub's Python heap for as long as clips arrived (hil/README.md, the soak)."""
    stmt = conflict_insert(dialect_name, alert_clips)
    return stmt.on_conflict_do_update(
        index_elements=[alert_clips.c.alert_row_id],
        set_={c.name: stmt.excluded[c.name] for c in alert_clips.c if not c.primary_key},
        where=alert_clips.c.state == "missing",
    )


class MediaStore:
    """The media tables of one hub database; thread-safe (the database's pool)."""

    def __init__(self, target: HubDatabase | str | Path) -> None:
        if isinstance(target, HubDatabase):
            self.database, self._owns = target, False
        else:
            try:
                self.database, self._owns = HubDatabase(target), True
            except LfrError as exc:
                raise MediaStoreError(f"media store: {exc}") from exc

    def close(self) -> None:
        if self._owns:
            self.database.close()

    def _fail(self, what: str, exc: SQLAlchemyError) -> MediaStoreError:
        return MediaStoreError(f"media store {self.database.where}: {what} ({describe_error(exc)})")

    # ---- staging -------------------------------------------------------------------------
    def stage_chunk(
        self, m: MediaManifest, manifest: bytes, count: int, index: int, data: bytes
    ) -> list[int]:
        """Keep one chunk (a repeat is ignored); returns the chunk indexes still missing."""
        try:
            with self.database.write() as db:
                db.execute(
                    conflict_insert_on(db, media_transfers)
                    .values(
                        media_id=m.media_id,
                        device_id=m.device,
                        kind=m.kind,
                        manifest=manifest,
                        chunks=count,
                        started_at=time.time(),
                    )
                    .on_conflict_do_nothing()
                )
                db.execute(
                    conflict_insert_on(db, media_chunks)
                    .values(media_id=m.media_id, idx=index, data=data)
                    .on_conflict_do_nothing()
                )
                have = set(
                    db.scalars(
                        select(media_chunks.c.idx).where(media_chunks.c.media_id == m.media_id)
                    )
                )
        except SQLAlchemyError as exc:
            raise self._fail("chunk not kept", exc) from exc
        return [i for i in range(count) if i not in have]

    def staged_box(self, media_id: str) -> bytes:
        with self.database.read() as db:
            parts = db.scalars(
                select(media_chunks.c.data)
                .where(media_chunks.c.media_id == media_id)
                .order_by(media_chunks.c.idx)
            ).all()
        return b"".join(bytes(p) for p in parts)

    def drop_staged(self, media_id: str) -> None:
        with self.database.write() as db:
            db.execute(delete(media_chunks).where(media_chunks.c.media_id == media_id))
            db.execute(delete(media_transfers).where(media_transfers.c.media_id == media_id))

    @staticmethod
    def _unstage(db: Connection, media_id: str) -> None:
        db.execute(delete(media_chunks).where(media_chunks.c.media_id == media_id))
        db.execute(delete(media_transfers).where(media_transfers.c.media_id == media_id))

    # ---- clips -------------------------------------------------------------------------------
    def store_clip(self, alert_row_id: int, opened: OpenedMedia, sha256: str) -> None:
        """Attach a complete clip to its alert row (replacing a missing-clip note) and drop
        its staging, in one commit."""
        m = opened.manifest
        values = {
            "alert_row_id": alert_row_id,
            "media_id": m.media_id,
            "state": "complete",
            "reason": "",
            "mp4": opened.mp4,
            "sha256": sha256,
            "frames": opened.info.frames,
            "width": opened.info.width,
            "height": opened.info.height,
            "fps": opened.info.fps,
            "start": m.start,
            "end": m.end,
            "received_at": time.time(),
            "ack_secret": opened.ack_secret,
        }
        try:
            with self.database.write() as db:
                db.execute(_clip_upsert(db.dialect.name), values)
                self._unstage(db, m.media_id)
        except SQLAlchemyError as exc:
            raise self._fail("clip not stored", exc) from exc

    def note_missing_clip(self, alert_row_id: int, m: MediaManifest) -> None:
        """Record that an alert's clip could not be made (a complete clip is kept)."""
        with self.database.write() as db:
            db.execute(
                conflict_insert_on(db, alert_clips)
                .values(
                    alert_row_id=alert_row_id,
                    media_id=m.media_id,
                    state="missing",
                    reason=m.reason,
                    mp4=None,
                    sha256="",
                    frames=0,
                    width=0,
                    height=0,
                    fps=0.0,
                    start=m.start,
                    end=m.end,
                    received_at=time.time(),
                    ack_secret=None,
                )
                .on_conflict_do_nothing()
            )

    def clip_secret(self, media_id: str) -> bytes | None:
        """The receipt secret of a clip already stored complete under this media id."""
        with self.database.read() as db:
            secret = db.scalar(
                select(alert_clips.c.ack_secret).where(
                    alert_clips.c.media_id == media_id, alert_clips.c.state == "complete"
                )
            )
        return None if secret is None else bytes(secret)

    def clip(self, alert_row_id: int, *, with_video: bool = True) -> ClipRow | None:
        c = alert_clips.c
        cols = [c.alert_row_id, c.media_id, c.state, c.reason, c.sha256, c.frames, c.width,
                c.height, c.fps, c.start, c.end, c.received_at]  # fmt: skip
        if with_video:
            cols.append(c.mp4)
        with self.database.read() as db:
            r = db.execute(select(*cols).where(c.alert_row_id == alert_row_id)).first()
        if r is None:
            return None
        return ClipRow(
            int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[5]), int(r[6]),
            int(r[7]), float(r[8]), float(r[9]), float(r[10]), float(r[11]),
            bytes(r[12]) if with_video and r[12] is not None else None,
        )  # fmt: skip

    # ---- segments ----------------------------------------------------------------------------
    def store_segment(self, opened: OpenedMedia, manifest: bytes, box: bytes) -> None:
        m = opened.manifest
        try:
            with self.database.write() as db:
                db.execute(
                    conflict_insert_on(db, evidence_segments)
                    .values(
                        media_id=m.media_id,
                        device_id=m.device,
                        deployment_id=m.deployment,
                        start=m.start,
                        end=m.end,
                        manifest=manifest,
                        box=box,
                        frames=opened.info.frames,
                        ack_secret=opened.ack_secret,
                        received_at=time.time(),
                    )
                    .on_conflict_do_nothing()
                )
                self._unstage(db, m.media_id)
        except SQLAlchemyError as exc:
            raise self._fail("segment not stored", exc) from exc

    def segment_secret(self, media_id: str) -> bytes | None:
        with self.database.read() as db:
            secret = db.scalar(
                select(evidence_segments.c.ack_secret).where(
                    evidence_segments.c.media_id == media_id
                )
            )
        return None if secret is None else bytes(secret)

    def segments(
        self, device_id: str | None = None, start: float = 0.0, end: float = 2.0**53
    ) -> list[SegmentRow]:
        s = evidence_segments.c
        query = select(
            s.media_id, s.device_id, s.deployment_id, s.start, s.end,
            func.length(s.box), s.frames, s.received_at,
        ).where(s.end >= start, s.start <= end)  # fmt: skip
        if device_id:
            query = query.where(s.device_id == device_id)
        with self.database.read() as db:
            rows = db.execute(query.order_by(s.device_id, s.start)).all()
        return [
            SegmentRow(
                str(r[0]),
                str(r[1]),
                str(r[2]),
                float(r[3]),
                float(r[4]),
                int(r[5]),
                int(r[6]),
                float(r[7]),
            )
            for r in rows
        ]

    def sealed_segment(self, media_id: str) -> tuple[bytes, bytes]:
        """(manifest, box) of a stored segment, by id or a unique prefix of 6+ hex digits."""
        s = evidence_segments.c
        with self.database.read() as db:
            rows = db.execute(
                select(s.manifest, s.box).where(s.media_id.like(media_id.lower() + "%")).limit(2)
            ).all()
        if len(rows) != 1:
            what = "not stored" if not rows else "matches more than one"
            raise MediaStoreError(f"segment {media_id[:40]}: {what}")
        return bytes(rows[0][0]), bytes(rows[0][1])

    def record_request(
        self, request_id: str, device_id: str, start: float, end: float, by_ref: str
    ) -> None:
        with self.database.write() as db:
            db.execute(
                insert(evidence_requests).values(
                    request_id=request_id,
                    device_id=device_id,
                    start=start,
                    end=end,
                    by_ref=by_ref,
                    at=time.time(),
                )
            )

    # ---- retention ---------------------------------------------------------------------------
    def purge(self, age_s: float, now: float | None = None) -> tuple[int, int]:
        """Delete segments whose last frame is older than ``age_s`` and staged transfers
        started longer ago; the run is recorded. Returns (segments, staged) deleted."""
        now = time.time() if now is None else now
        cutoff = now - age_s
        with self.database.write() as db:
            segs = db.execute(delete(evidence_segments).where(evidence_segments.c.end < cutoff))
            old = select(media_transfers.c.media_id).where(media_transfers.c.started_at < cutoff)
            db.execute(delete(media_chunks).where(media_chunks.c.media_id.in_(old)))
            staged = db.execute(
                delete(media_transfers).where(media_transfers.c.started_at < cutoff)
            )
            db.execute(
                insert(evidence_purges).values(
                    at=now, cutoff=cutoff, segments=segs.rowcount, staged=staged.rowcount
                )
            )
        return int(segs.rowcount), int(staged.rowcount)
