"""Device side of the watchlist: import, keep sealed at rest, bind, release, wipe.

Life of a watchlist on the device:

1. **import** (MQTT ``lfr/v1/<dev>/watchlist`` or ``lfr-agent watchlist import``):
   size limit, decrypt with the device X25519 key, signature by a key certified
   for watchlist signing, embeddings hash, the bundle names this device, the
   embedder model matches, not expired, and newer than any bundle seen before
   for the same deployment. The plaintext is then dropped: the *sealed* file,
   exactly as received, is kept under ``<state_dir>/watchlists/<hash>.lfrwl``
   (mode 0600) next to ``index.json`` (hash, deployment, times; no biometrics).
2. **bind**: only an activation that names the watchlist hash gets it decrypted
   (all checks again) into an in-memory ``Gallery``.
   The activation's window end (``not_after``) is recorded in the index.
3. **release**: the activation lapsed; the gallery memory is overwritten, the
   sealed file stays for the next activation of the same deployment, but only
   until the recorded window end.
4. **wipe**: on deployment end, signed stop, operator command, at the end of
   the last activation window it was bound to (``tick``: a deployment that ended
   by a lapsed lease, a camera failure or a restart and was never stopped), or
   in any case 24 h after expiry (``tick``): the wipe is first recorded in the
   index (``wiping``), then the file is overwritten with zeros, fsynced, unlinked,
   its folder fsynced, the gallery memory is cleared, and the record is removed.

Power cuts: a wipe cut short (a half-overwritten file) is finished when the store is
next opened, with its recorded reason; a bundle or index cut short while being
written (a leftover temporary file) is destroyed then; a bundle written but not yet
in the index is destroyed as an orphan. So the folder only ever holds whole sealed
bundles the index lists, and a wipe once started is never undone.

Every step is audited: ``watchlist.loaded``, ``watchlist.bound``,
``watchlist.released``, ``watchlist.wiped`` (+reason), ``watchlist.refused``
(+reason). The per-deployment high-water mark of creation times survives wipes,
so a wiped or superseded bundle can never be brought back.

The life cycle is the same for the plate hotlist (``agent/matching/hotlist_store.py``):
``SealedListStore`` holds it once; ``WatchlistStore`` and ``HotlistStore`` say how their
bundle is opened and checked and what is held in memory while bound, and each keeps its
own folder, audit events (``watchlist.*`` / ``hotlist.*``) and messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.config import AgentConfig
from agent.errors import LfrError
from agent.matching.gallery import Gallery
from agent.matching.watchlist_bundle import (
    FindSigningKey,
    OpenedWatchlist,
    WatchlistError,
    check_model,
    open_bundle,
)
from agent.trust.key_files import write_atomic
from agent.trust.signed_document import loads_untrusted
from agent.vision.model_store import PinnedModel

log = logging.getLogger(__name__)

#: Hard limit: a stored watchlist is wiped this long after its expiry, activation or not.
WIPE_AFTER_EXPIRY_S = 24 * 3600.0
INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
BUNDLE_SUFFIX = ".lfrwl"
INDEX_FORMAT = 1


MakeGallery = Callable[[npt.NDArray[np.float16], list[str]], Gallery]
Audit = Callable[..., None]


class BoundList(Protocol):
    """What a bound list holds in memory: its entry count, and a way to overwrite it."""

    def __len__(self) -> int: ...

    def clear(self) -> None: ...


BoundT = TypeVar("BoundT", bound=BoundList)


class WatchlistStoreError(LfrError):
    """The watchlist folder cannot be used, or a requested watchlist is not there."""


@dataclass(frozen=True)
class StoredWatchlist:
    """What the store knows about a sealed watchlist without decrypting it."""

    watchlist_hash: str
    deployment_id: str
    created_at: float
    expires_at: float
    count: int
    model_id: str
    imported_at: float
    size_bytes: int
    #: End of the window of the last activation that bound it; wiped once passed.
    window_ends_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "count": self.count,
            "model_id": self.model_id,
            "imported_at": self.imported_at,
            "size_bytes": self.size_bytes,
            "window_ends_at": self.window_ends_at,
        }

    @classmethod
    def from_json(cls, h: str, d: dict[str, Any]) -> StoredWatchlist:
        return cls(
            h,
            str(d["deployment_id"]),
            float(d["created_at"]),
            float(d["expires_at"]),
            int(d["count"]),
            str(d["model_id"]),
            float(d["imported_at"]),
            int(d["size_bytes"]),
            None if d.get("window_ends_at") is None else float(d["window_ends_at"]),
        )


@dataclass(frozen=True)
class ImportResult:
    """Outcome of an import: ``stored`` (new), ``unchanged`` (same hash already held)."""

    status: str
    watchlist: StoredWatchlist
    replaced: tuple[str, ...] = ()


class SealedListStore(Generic[BoundT]):
    """The sealed lists of one kind on one device and the one bound in memory (if any).

    Subclasses name the kind (``KIND``: folder, audit events, messages) and implement
    ``_open_checked`` (decrypt and check a bundle) and ``_make_bound`` (what to hold)."""

    KIND: ClassVar[str] = "watchlist"
    SUFFIX: ClassVar[str] = BUNDLE_SUFFIX

    def __init__(
        self,
        state_dir: Path,
        *,
        device_id: str,
        device_key: X25519PrivateKey | None,
        find_signing_key: Callable[[float], FindSigningKey],
        model_id: str,
        model_sha256: str,
        max_bundle_bytes: int = 8 * 1024 * 1024,
        audit: Audit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``find_signing_key(now)`` returns the key finder for list signers valid at
        ``now`` (e.g. ``HubTrustStore.watchlist_key_finder``); ``audit(event, **fields)``
        records each step (e.g. ``AuditLog.append``)."""
        self.dir = state_dir / f"{self.KIND}s"
        self.device_id = device_id
        self._key = device_key
        self._find_signing_key = find_signing_key
        self.model_id = model_id
        self.model_sha256 = model_sha256
        self.max_bundle_bytes = max_bundle_bytes
        self._audit_fn: Audit = audit or (lambda event, **fields: None)
        self._clock = clock
        self._lock = threading.RLock()
        self._bound: tuple[str, BoundT] | None = None
        self._stored: dict[str, StoredWatchlist] = {}
        self._high_water: dict[str, float] = {}
        #: Wipes on record but maybe not finished (a power cut): hash → reason, deployment.
        self._wiping: dict[str, dict[str, str | None]] = {}
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise WatchlistStoreError(
                f"{self.KIND}: cannot create {self.dir} ({exc.strerror})"
            ) from exc
        with self._locked():
            self._finish_interrupted_work()

    def _audit(self, event: str, **fields: Any) -> None:
        """``watchlist.loaded`` … for a watchlist, ``hotlist.loaded`` … for a hotlist; the
        list's hash is recorded as ``<kind>_hash``."""
        name, _, step = event.partition(".")
        if name == "watchlist" and self.KIND != "watchlist":
            event = f"{self.KIND}.{step}"
            if "watchlist_hash" in fields:
                fields[f"{self.KIND}_hash"] = fields.pop("watchlist_hash")
        self._audit_fn(event, **fields)

    def _open_checked(self, data: bytes, now: float) -> Any:
        """Decrypt and check a sealed bundle (signature, device, scheme, expiry): an
        opened list with ``watchlist_hash``, ``deployment_id``, ``created_at``,
        ``expires_at``, ``count``, ``model_id`` and ``wipe()``; WatchlistError if not."""
        raise NotImplementedError

    def _make_bound(self, opened: Any) -> BoundT:
        """What is held in memory while the list is bound (its own copy of the entries)."""
        raise NotImplementedError

    # -- persistence --------------------------------------------------------------------
    def _path(self, watchlist_hash: str) -> Path:
        return self.dir / f"{watchlist_hash}{self.SUFFIX}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise with other threads and with other processes (the daemon and a
        technician's ``lfr-agent watchlist`` command), then re-read the index."""
        with self._lock:
            fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._load_index()
                yield
            finally:
                os.close(fd)

    def _load_index(self) -> None:
        path = self.dir / INDEX_FILE
        self._stored, self._high_water, self._wiping = {}, {}, {}
        if not path.exists():
            return
        try:
            raw = loads_untrusted(path.read_bytes())
            stored = {h: StoredWatchlist.from_json(h, d) for h, d in raw["stored"].items()}
            high_water = {str(k): float(v) for k, v in raw["high_water"].items()}
            wiping = {
                str(h): {
                    "reason": str(w["reason"]),
                    "deployment_id": None
                    if w.get("deployment_id") is None
                    else str(w["deployment_id"]),
                }
                for h, w in raw.get("wiping", {}).items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # Without the index nothing can be checked: destroy every bundle (always the
            # safe direction) and start a fresh index. Expiry still bounds any replay.
            for f in self.dir.glob(f"*{self.SUFFIX}"):
                _shred(f)
                self._audit("watchlist.wiped", watchlist_hash=f.stem, reason="index-unreadable")
            log.error("%s: index %s unreadable (%s); all bundles wiped", self.KIND, path, exc)
            self._save_index()
            return
        self._stored, self._high_water, self._wiping = stored, high_water, wiping

    def _finish_interrupted_work(self) -> None:
        """What a power cut or crash left half done: temporary files, wipes, orphans."""
        for f in sorted(self.dir.iterdir()):
            if f.name.startswith(f".{INDEX_FILE}."):
                f.unlink(missing_ok=True)  # an index never renamed into place
            elif f.name.startswith(".") and f"{BUNDLE_SUFFIX}." in f.name:
                # A sealed bundle whose import never completed: ciphertext, maybe torn.
                _shred(f)
                self._audit(
                    "watchlist.wiped",
                    watchlist_hash=f.name[1:].split(".", 1)[0],
                    reason="incomplete-import",
                )
        for h, wipe in sorted(self._wiping.items()):
            # The wipe was on record before it began: finish it, with its own reason.
            _shred(self._path(h))
            self._audit(
                "watchlist.wiped",
                watchlist_hash=h,
                deployment_id=wipe["deployment_id"],
                reason=wipe["reason"],
                resumed=True,
            )
        if self._wiping:
            self._wiping = {}
            self._save_index()
        # A crash between writing a bundle and the index leaves an orphan: destroy it.
        for f in self.dir.glob(f"*{self.SUFFIX}"):
            if f.name.removesuffix(self.SUFFIX) not in self._stored:
                _shred(f)
                self._audit("watchlist.wiped", watchlist_hash=f.stem, reason="orphan")
        missing = [h for h in self._stored if not self._path(h).exists()]
        for h in missing:
            del self._stored[h]
            self._audit("watchlist.wiped", watchlist_hash=h, reason="file-missing")
        if missing:
            self._save_index()

    def _save_index(self) -> None:
        raw = {
            "format": INDEX_FORMAT,
            "stored": {h: s.to_json() for h, s in self._stored.items()},
            "high_water": self._high_water,
            "wiping": self._wiping,
        }
        try:
            write_atomic(
                self.dir / INDEX_FILE, json.dumps(raw, indent=1, sort_keys=True).encode(), 0o600
            )
        except OSError as exc:
            raise WatchlistStoreError(
                f"{self.KIND}: cannot write {self.dir / INDEX_FILE} ({exc.strerror})"
            ) from exc

    # -- queries ------------------------------------------------------------------------
    def stored(self) -> list[StoredWatchlist]:
        with self._locked():
            return sorted(self._stored.values(), key=lambda s: s.created_at)

    @property
    def bound_hash(self) -> str | None:
        with self._lock:
            return self._bound[0] if self._bound else None

    def hash_for_deployment(self, deployment_id: str) -> str | None:
        """The watchlist held for a deployment (a newer import replaces an older one),
        e.g. as ``loaded_watchlist_sha256`` for the activation checks."""
        with self._locked():
            return next(
                (h for h, s in self._stored.items() if s.deployment_id == deployment_id), None
            )

    # -- import -------------------------------------------------------------------------
    def _refuse(self, exc: WatchlistError, source: str) -> WatchlistError:
        self._audit("watchlist.refused", reason=exc.reason, detail=str(exc)[:250], source=source)
        log.warning("%s", exc)
        return exc

    def import_bundle(self, data: bytes, source: str = "file") -> ImportResult:
        """Verify a sealed bundle and keep it, still sealed. Raises WatchlistError (audited)."""
        with self._locked():
            now = self._clock()
            try:
                opened = self._open_checked(data, now)
            except WatchlistError as exc:
                raise self._refuse(exc, source) from exc
            try:
                meta = StoredWatchlist(
                    opened.watchlist_hash,
                    opened.deployment_id,
                    opened.created_at,
                    opened.expires_at,
                    opened.count,
                    opened.model_id,
                    now,
                    len(data),
                )
            finally:
                opened.wipe()
            if meta.watchlist_hash in self._stored:
                return ImportResult("unchanged", self._stored[meta.watchlist_hash])
            mark = self._high_water.get(meta.deployment_id)
            if mark is not None and meta.created_at <= mark:
                older = WatchlistError(
                    "older",
                    f"{self.KIND}: for deployment {meta.deployment_id} created "
                    f"{_iso(meta.created_at)}, not newer than the one already received "
                    f"({_iso(mark)}); refused",
                )
                raise self._refuse(older, source) from None
            try:
                write_atomic(self._path(meta.watchlist_hash), data, 0o600)
            except OSError as exc:
                raise WatchlistStoreError(
                    f"{self.KIND}: cannot store {self._path(meta.watchlist_hash)} ({exc.strerror})"
                ) from exc
            self._stored[meta.watchlist_hash] = meta
            self._high_water[meta.deployment_id] = meta.created_at
            replaced = tuple(
                h
                for h, s in self._stored.items()
                if s.deployment_id == meta.deployment_id and h != meta.watchlist_hash
            )
            self._save_index()
            self._audit(
                "watchlist.loaded",
                watchlist_hash=meta.watchlist_hash,
                deployment_id=meta.deployment_id,
                entries=meta.count,
                model_id=meta.model_id,
                created_at=meta.created_at,
                expires_at=meta.expires_at,
                source=source,
            )
            for h in replaced:
                self._wipe_one(h, "replaced")
            return ImportResult("stored", meta, replaced)

    def handle_watchlist_message(self, payload: bytes) -> ImportResult | LfrError:
        """The handler the daemon wires to ``lfr/v1/<dev>/watchlist``. Never raises for a
        bad payload or a store that cannot keep it: the refusal is returned (and audited
        where it was the bundle's fault)."""
        try:
            return self.import_bundle(payload, source="mqtt")
        except (WatchlistError, WatchlistStoreError) as exc:
            return exc

    # -- bind / release -----------------------------------------------------------------
    def bind(
        self, watchlist_hash: str, deployment_id: str, window_ends_at: float | None = None
    ) -> BoundT:
        """Decrypt the watchlist an activation names into memory and return its gallery.

        ``window_ends_at`` is the activation's ``not_after``: the sealed file is wiped
        once it passes, unless a later activation of the deployment binds it again.
        Raises WatchlistError (audited) when it is not stored, is for another
        deployment, or fails any check now (signature, device, model, expiry).
        """
        with self._locked():
            if self._bound and self._bound[0] == watchlist_hash and watchlist_hash in self._stored:
                self._note_window(watchlist_hash, window_ends_at)
                return self._bound[1]
            now = self._clock()
            meta = self._stored.get(watchlist_hash)
            try:
                if meta is None:
                    raise WatchlistError(
                        "not-stored",
                        f"{self.KIND}: {watchlist_hash[:16]} named by the activation is not on "
                        "this device",
                    )
                if meta.deployment_id != deployment_id:
                    raise WatchlistError(
                        "wrong-deployment",
                        f"{self.KIND}: {watchlist_hash[:16]} is for deployment "
                        f"{meta.deployment_id}, not {deployment_id}",
                    )
                try:
                    data = self._path(watchlist_hash).read_bytes()
                except OSError as exc:
                    raise WatchlistError(
                        "not-stored", f"{self.KIND}: cannot read the sealed file ({exc.strerror})"
                    ) from exc
                opened = self._open_checked(data, now)
                if opened.watchlist_hash != watchlist_hash:
                    opened.wipe()
                    raise WatchlistError(
                        "tampered", f"{self.KIND}: stored file does not match its hash"
                    )
            except WatchlistError as exc:
                raise self._refuse(exc, "bind") from exc
            try:
                gallery = self._make_bound(opened)
            finally:
                opened.wipe()  # the gallery holds its own copy; the decrypted buffer goes now
            self._release_locked("rebound")
            self._bound = (watchlist_hash, gallery)
            try:
                self._note_window(watchlist_hash, window_ends_at)
            except WatchlistStoreError:
                # Without its window end on record it could outlive its deployment.
                self._release_locked("index-unwritable")
                raise
            self._audit(
                "watchlist.bound",
                watchlist_hash=watchlist_hash,
                deployment_id=deployment_id,
                entries=len(gallery),
            )
            return gallery

    def _note_window(self, watchlist_hash: str, window_ends_at: float | None) -> None:
        # The latest activation's window is the operator's latest word, shorter or longer.
        meta = self._stored[watchlist_hash]
        if window_ends_at is not None and meta.window_ends_at != window_ends_at:
            self._stored[watchlist_hash] = replace(meta, window_ends_at=window_ends_at)
            self._save_index()

    def release(self, reason: str = "activation-ended") -> None:
        """Clear the in-memory gallery; the sealed file stays."""
        with self._lock:
            self._release_locked(reason)

    def _release_locked(self, reason: str) -> None:
        if self._bound is None:
            return
        h, gallery = self._bound
        self._bound = None
        gallery.clear()
        self._audit("watchlist.released", watchlist_hash=h, reason=reason)

    # -- wipe ---------------------------------------------------------------------------
    def _wipe_one(self, watchlist_hash: str, reason: str) -> None:
        if self._bound and self._bound[0] == watchlist_hash:
            self._bound[1].clear()
            self._bound = None
        meta = self._stored.pop(watchlist_hash, None)
        deployment_id = meta.deployment_id if meta else None
        # On record first: a power cut during the overwrite must not leave a half-zeroed
        # file listed as stored; the next open finishes the wipe instead.
        self._wiping[watchlist_hash] = {"reason": reason, "deployment_id": deployment_id}
        self._save_index()
        _shred(self._path(watchlist_hash))
        self._audit(
            "watchlist.wiped",
            watchlist_hash=watchlist_hash,
            deployment_id=deployment_id,
            reason=reason,
        )
        del self._wiping[watchlist_hash]
        self._save_index()

    def wipe(self, watchlist_hash: str, reason: str) -> bool:
        """Wipe one watchlist (file and memory). Returns False if it was not stored."""
        with self._locked():
            if watchlist_hash not in self._stored:
                return False
            self._wipe_one(watchlist_hash, reason)
            return True

    def end_deployment(self, deployment_id: str, reason: str = "deployment-ended") -> list[str]:
        """Wipe every watchlist of a deployment (its end, or a signed stop)."""
        with self._locked():
            hashes = [h for h, s in self._stored.items() if s.deployment_id == deployment_id]
            for h in hashes:
                self._wipe_one(h, reason)
            return hashes

    def wipe_all(self, reason: str = "operator") -> list[str]:
        with self._locked():
            hashes = list(self._stored)
            for h in hashes:
                self._wipe_one(h, reason)
            self._release_locked(reason)
            return hashes

    def tick(self, now: float | None = None) -> list[str]:
        """Enforce time limits; the daemon calls this periodically.

        A bound watchlist past its expiry is released from memory; a stored one whose
        last activation window has ended is wiped (its deployment is over, however it
        ended); any stored one 24 h past its expiry is wiped whether or not it was
        ever used.
        """
        with self._locked():
            now = self._clock() if now is None else now
            if self._bound is not None:
                meta = self._stored.get(self._bound[0])
                if meta is None:  # wiped by another process (operator command)
                    self._release_locked("wiped")
                elif meta.expires_at <= now:
                    self._release_locked("expired")
            # The bound one is left to its deployment's end (expiry, a final reason):
            # wiping it here first would close the camera as watchlist-missing.
            bound = self._bound[0] if self._bound else None
            window_over = [
                h
                for h, s in self._stored.items()
                if s.window_ends_at is not None and now >= s.window_ends_at and h != bound
            ]
            for h in window_over:
                self._wipe_one(h, "window-ended")
            due = [h for h, s in self._stored.items() if now >= s.expires_at + WIPE_AFTER_EXPIRY_S]
            for h in due:
                self._wipe_one(h, "24h-after-expiry")
            return window_over + due


class WatchlistStore(SealedListStore[Gallery]):
    """The sealed watchlists of one device and the one bound gallery (if any)."""

    KIND = "watchlist"

    def __init__(
        self,
        state_dir: Path,
        *,
        device_id: str,
        device_key: X25519PrivateKey | None,
        find_signing_key: Callable[[float], FindSigningKey],
        model_id: str,
        model_sha256: str,
        max_bundle_bytes: int = 8 * 1024 * 1024,
        audit: Audit | None = None,
        clock: Callable[[], float] = time.time,
        make_gallery: MakeGallery = Gallery,
    ) -> None:
        self._make_gallery = make_gallery
        super().__init__(
            state_dir,
            device_id=device_id,
            device_key=device_key,
            find_signing_key=find_signing_key,
            model_id=model_id,
            model_sha256=model_sha256,
            max_bundle_bytes=max_bundle_bytes,
            audit=audit,
            clock=clock,
        )

    @classmethod
    def from_config(
        cls,
        cfg: AgentConfig,
        *,
        device_key: X25519PrivateKey,
        find_signing_key: Callable[[float], FindSigningKey],
        embedder: PinnedModel,
        audit: Audit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> WatchlistStore:
        """The store of a configured device, checking bundles against its embedder."""
        return cls(
            cfg.paths.state_dir,
            device_id=cfg.device.id,
            device_key=device_key,
            find_signing_key=find_signing_key,
            model_id=embedder.model_id,
            model_sha256=embedder.sha256,
            max_bundle_bytes=cfg.watchlist.max_bundle_mb * 1024 * 1024,
            audit=audit,
            clock=clock,
        )

    def _open_checked(self, data: bytes, now: float) -> OpenedWatchlist:
        if self._key is None:
            raise WatchlistStoreError(f"{self.KIND}: store opened without the device key")
        if len(data) > self.max_bundle_bytes:
            raise WatchlistError(
                "too-large",
                f"watchlist: payload of {len(data)} bytes exceeds the limit of "
                f"{self.max_bundle_bytes} bytes",
            )
        opened = open_bundle(data, self.device_id, self._key, self._find_signing_key(now))
        try:
            check_model(opened, self.model_id, self.model_sha256)
            if opened.expires_at <= now:
                raise WatchlistError(
                    "expired",
                    f"watchlist: expired at {_iso(opened.expires_at)} (device clock {_iso(now)})",
                )
        except BaseException:
            opened.wipe()
            raise
        return opened

    def _make_bound(self, opened: OpenedWatchlist) -> Gallery:
        return self._make_gallery(opened.embeddings, list(opened.refs))


def _shred(path: Path) -> None:
    """Overwrite a file with zeros, fsync, unlink, fsync its folder.

    On flash with wear levelling the old blocks may survive the overwrite; the
    file was ciphertext all along, so this is a second line, not the first.
    """
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        chunk = bytes(min(size, 1 << 20))
        left = size
        while left > 0:
            left -= os.write(fd, chunk[: min(left, len(chunk))])
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
