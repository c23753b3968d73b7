"""The hub's change feed: how a console (or any part of the hub) learns, well within a
second, that the database changed, whichever worker or process changed it.

Writers announce a change inside their write transaction::

    with db.write() as conn:
        conn.execute(...)
        db.changes.emit(conn, "alert.stored", str(row_id))

Readers subscribe and wait::

    with db.changes.subscribe() as sub:
        change = sub.get(timeout=15.0)            # a Change, or None after the timeout
        change = await sub.next(timeout=15.0)     # the same from asyncio (an SSE handler)

A ``Change`` is a hint, not data: ``kind`` says what changed and ``ref`` which row (a
row id, a device id: identifiers only, never content, since every notification is
visible to every session of the database). The subscriber re-reads what it shows from
the store. Two kinds need no ``ref``:

- ``"changed"``: something changed that the feed cannot name (another process wrote
  to the same SQLite file): re-read what is on screen;
- ``"resync"``: changes may have been missed (the feed lost its PostgreSQL connection,
  its first connection took longer than ``LISTEN_WAIT_S`` to listen, or this subscriber
  fell more than ``MAX_PENDING`` changes behind): re-read everything.

On PostgreSQL a NOTIFY reaches only connections already listening, so ``subscribe``
returns once the feed's connection is listening (or after ``LISTEN_WAIT_S``, and then a
``resync`` follows when it is): a change committed right after subscribing is not lost.

A change is delivered only after its transaction committed, never for one rolled back.
Kinds the store itself emits: ``alert.stored`` and ``alert.adjudicated`` (ref: the
alert's row id), ``alerts.purged`` (ref: the purge id), ``report.stored`` (ref:
``device/deployment/activation``), ``device.key`` (ref: the device id), ``alert.held``
and ``alert.released`` (ref: the alert's row id); the plate alert store ``plate.stored``
and ``plate.adjudicated`` (ref: the plate alert's row id) and ``plates.purged`` (ref:
how many). Other rooms add
their own (``device.status``, ``deployment.…``); a kind is 1–64 characters of
``[a-z0-9._-]``, a ref at most 200 characters.

How it travels:

- **PostgreSQL**: ``pg_notify`` on the channel ``lfr_hub_changes`` in the writer's
  transaction, which PostgreSQL delivers at commit to every session listening, on any
  machine. Each process that subscribes holds one listening connection and a thread
  that hands notifications to its subscribers (no table is polled). If that
  connection drops, the thread reconnects and sends ``resync``.
- **SQLite**: changes made through this process's ``HubDatabase`` go straight to its
  subscribers after the commit. For writers in other processes on the same file a
  thread reads ``PRAGMA data_version`` every ``SQLITE_POLL_S`` (a counter SQLite keeps
  in memory; no table is read) and sends ``changed`` when another connection
  committed. Own commits also move that counter, so a ``changed`` can follow an exact
  change of this process: harmless, as both only mean "re-read".
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

CHANNEL = "lfr_hub_changes"
#: Changes a subscriber may fall behind before it gets one ``resync`` instead.
MAX_PENDING = 1000
SQLITE_POLL_S = 0.1
_RECONNECT_MAX_S = 5.0
#: How long the first subscription waits for the PostgreSQL connection to be listening.
LISTEN_WAIT_S = 2.0
_KIND = re.compile(r"[a-z0-9._-]{1,64}")
_MAX_REF = 200
PENDING_KEY = "lfr_pending_changes"


@dataclass(frozen=True)
class Change:
    """One change: what (``kind``), which (``ref``), when it was emitted (Unix seconds)."""

    kind: str
    ref: str = ""
    at: float = 0.0


class Subscription:
    """Changes for one reader, in order; thread-safe, and awaitable from asyncio."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self._pending: deque[Change] = deque()
        self._cond = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.closed = False

    def _put(self, change: Change) -> None:
        with self._cond:
            if len(self._pending) >= MAX_PENDING:
                self._pending.clear()
                change = Change("resync", "", time.time())
            self._pending.append(change)
            self._cond.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed
                continue

    def get(self, timeout: float | None = None) -> Change | None:
        """The next change, waiting up to ``timeout`` seconds (None: no more waiting
        than that; returns None when nothing came or the subscription is closed)."""
        with self._cond:
            if not self._pending and not self.closed:
                self._cond.wait_for(lambda: bool(self._pending) or self.closed, timeout)
            return self._pending.popleft() if self._pending else None

    async def next(self, timeout: float | None = None) -> Change | None:
        """``get`` for asyncio code: waits without blocking the event loop."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._cond:
            if self._pending or self.closed:
                return self._pending.popleft() if self._pending else None
            self._waiters.append((loop, event))
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._cond:
                self._waiters.remove((loop, event))
        return self.get(timeout=0)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                continue
        self._feed._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ChangeFeed:
    """The change feed of one ``HubDatabase`` (one per process and database)."""

    def __init__(self, engine: Engine, *, sqlite_path: Path | None) -> None:
        self._engine = engine
        self._sqlite_path = sqlite_path
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Any = None  # the PostgreSQL listening connection
        # Set while the PostgreSQL connection is LISTENing: a NOTIFY sent before that
        # reaches nobody, so the first subscription waits for it (``subscribe``).
        self._listening = threading.Event()
        self._start_missed = False  # a subscription stopped waiting before LISTEN took

    # ---- writers ----------------------------------------------------------------
    def emit(self, conn: Connection, kind: str, ref: str = "") -> None:
        """Announce a change made in ``conn``'s open write transaction; delivered to
        every subscriber once (and only if) that transaction commits."""
        if not _KIND.fullmatch(kind):
            raise ValueError(f"change kind {kind[:70]!r}: 1-64 characters of a-z 0-9 . _ -")
        if len(ref) > _MAX_REF:
            raise ValueError(f"change ref: longer than {_MAX_REF} characters")
        if conn.dialect.name == "postgresql":
            payload = json.dumps({"k": kind, "r": ref, "t": round(time.time(), 3)})
            conn.execute(text("SELECT pg_notify(:channel, :payload)"), {
                "channel": CHANNEL,
                "payload": payload,
            })  # fmt: skip
        else:
            conn.info.setdefault(PENDING_KEY, []).append(Change(kind, ref, time.time()))

    def committed(self, changes: list[Change]) -> None:
        """Deliver changes whose transaction has committed (SQLite; called by
        ``HubDatabase.write``)."""
        for change in changes:
            self._deliver(change)

    # ---- readers ----------------------------------------------------------------
    def subscribe(self) -> Subscription:
        """A new subscription; the feed's listening thread starts with the first."""
        sub = Subscription(self)
        with self._lock:
            self._subscribers.append(sub)
            if self._thread is None:
                self._stop.clear()
                target: Callable[[], None] = (
                    self._watch_sqlite if self._sqlite_path is not None else self._listen_postgres
                )
                self._thread = threading.Thread(target=target, name="hub-change-feed", daemon=True)
                self._thread.start()
        if self._sqlite_path is None and not self._listening.wait(LISTEN_WAIT_S):
            # The database is not answering: the subscriber learns of what it missed by
            # a resync once the listening connection is up.
            self._start_missed = True
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def _deliver(self, change: Change) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub._put(change)

    def close(self) -> None:
        """Stop the listening thread and close every subscription."""
        self._stop.set()
        listener = self._listener
        if listener is not None:
            try:
                listener.cancel_safe()  # wakes a thread blocked waiting for notifications
            except Exception:
                log.debug("change feed: cancel failed", exc_info=True)
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
        self._thread = None
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.close()

    # ---- the listening threads --------------------------------------------------
    def _watch_sqlite(self) -> None:
        assert self._sqlite_path is not None
        try:
            conn = sqlite3.connect(self._sqlite_path, isolation_level=None)
        except sqlite3.Error:
            log.exception("change feed: cannot watch %s", self._sqlite_path)
            return
        try:
            seen = conn.execute("PRAGMA data_version").fetchone()[0]
            while not self._stop.wait(SQLITE_POLL_S):
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != seen:
                    seen = version
                    self._deliver(Change("changed", "", time.time()))
        except sqlite3.Error:
            log.exception("change feed: watching %s failed", self._sqlite_path)
        finally:
            conn.close()

    def _listen_postgres(self) -> None:
        pause = 0.2
        first = True
        while not self._stop.is_set():
            try:
                raw = self._engine.raw_connection()
                listener = raw.driver_connection
                raw.detach()  # held for good: not the pool's to recycle
                if listener is None:
                    raise RuntimeError("no driver connection")
                listener.autocommit = True
                listener.execute(f"LISTEN {CHANNEL}")
                self._listener = listener
                self._listening.set()
                if not first or self._start_missed:
                    # Whatever was committed while the connection was down is lost.
                    self._deliver(Change("resync", "", time.time()))
                first, pause, self._start_missed = False, 0.2, False
                while not self._stop.is_set():
                    for note in listener.notifies(timeout=1.0):
                        self._deliver(_parse(note.payload))
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning("change feed: listening connection lost (%s); reconnecting", exc)
                first = False
                self._stop.wait(pause)
                pause = min(pause * 2, _RECONNECT_MAX_S)
            finally:
                self._listening.clear()
                listener, self._listener = self._listener, None
                if listener is not None:
                    try:
                        listener.close()
                    except Exception:
                        log.debug("change feed: close failed", exc_info=True)


def _parse(payload: str) -> Change:
    """A notification payload as ``emit`` wrote it; anything else means ``changed``."""
    try:
        obj = json.loads(payload)
        kind, ref, at = obj["k"], obj["r"], obj["t"]
        if isinstance(kind, str) and _KIND.fullmatch(kind) and isinstance(ref, str):
            return Change(kind, ref[:_MAX_REF], float(at))
    except (ValueError, KeyError, TypeError):
        pass
    return Change("changed", "", time.time())
