"""The camera's plate hotlists: the watchlist's life cycle (``SealedListStore``) for a
hotlist. Import verifies and keeps the sealed file under ``<state_dir>/hotlists/``; an
activation that names its hash binds it into a ``HotlistMatcher``; deployment end, a
signed stop, the end of its window or 24 h past expiry wipe it. Audited as
``hotlist.loaded``, ``.bound``, ``.released``, ``.wiped``, ``.refused``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.config import AgentConfig
from agent.matching.hotlist_bundle import SCHEME_ID, HotlistError, OpenedHotlist, open_hotlist
from agent.matching.watchlist_bundle import FindSigningKey
from agent.matching.watchlist_store import Audit, SealedListStore, WatchlistStoreError, _iso
from agent.plates.hotlist_matcher import HotlistMatcher

HOTLIST_SUFFIX = ".lfrhl"


class HotlistStore(SealedListStore[HotlistMatcher]):
    KIND = "hotlist"
    SUFFIX = HOTLIST_SUFFIX

    @classmethod
    def from_config(
        cls,
        cfg: AgentConfig,
        *,
        device_key: X25519PrivateKey,
        find_signing_key: Callable[[float], FindSigningKey],
        audit: Audit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> HotlistStore:
        return cls(
            cfg.paths.state_dir,
            device_id=cfg.device.id,
            device_key=device_key,
            find_signing_key=find_signing_key,
            model_id=SCHEME_ID,
            model_sha256=SCHEME_ID,
            max_bundle_bytes=cfg.plates.max_hotlist_mb * 1024 * 1024,
            audit=audit,
            clock=clock,
        )

    def _open_checked(self, data: bytes, now: float) -> OpenedHotlist:
        if self._key is None:
            raise WatchlistStoreError("hotlist: store opened without the device key")
        if len(data) > self.max_bundle_bytes:
            raise HotlistError(
                "too-large",
                f"hotlist: payload of {len(data)} bytes exceeds the limit of "
                f"{self.max_bundle_bytes} bytes",
            )
        opened = open_hotlist(data, self.device_id, self._key, self._find_signing_key(now))
        if opened.expires_at <= now:
            opened.wipe()
            raise HotlistError(
                "expired",
                f"hotlist: expired at {_iso(opened.expires_at)} (device clock {_iso(now)})",
            )
        return opened

    def _make_bound(self, opened: OpenedHotlist) -> HotlistMatcher:
        return HotlistMatcher(opened)
