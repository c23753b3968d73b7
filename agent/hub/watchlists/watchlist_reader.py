"""The hub opening a watchlist it built: the sealed file's hub copy (sealed to the hub alert
key) decrypted and verified against the hub's own watchlist key, plus its hub map.

Used to calibrate thresholds against exactly the entries a camera will match. The
decrypted embeddings stay in memory; ``HubWatchlist.wipe`` zeroes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import UsageError
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.watchlists.watchlist_builder import map_path_for
from agent.matching.watchlist_bundle import OpenedWatchlist, WatchlistError, open_hub_copy
from agent.trust.signed_document import key_id


@dataclass
class HubWatchlist:
    """A watchlist as the hub calibrates against it."""

    watchlist_hash: str
    deployment_id: str
    model_id: str
    model_sha256: str
    refs: list[str]
    embeddings: npt.NDArray[np.float16]  # as the bundle carries them (a copy)
    subjects: frozenset[str] = frozenset()  # names from the hub map, when it is there

    def wipe(self) -> None:
        self.embeddings.fill(0)
        self.refs.clear()


def _subjects(path: Path) -> frozenset[str]:
    """Subject names in the watchlist's hub map (empty when there is none)."""
    try:
        data: Any = json.loads(map_path_for(path).read_text())
        return frozenset(
            str(entry["subject"]) for entry in data.get("refs", {}).values() if "subject" in entry
        )
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return frozenset()


def read_hub_watchlist(path: Path, keys: HubKeyStore) -> HubWatchlist:
    """Open ``path`` (a sealed watchlist this hub built) with the hub alert key.

    UsageError (one line) when the file is missing, not a watchlist, built without a hub
    copy, or not signed by this hub's watchlist key.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"watchlist: cannot read {path} ({exc.strerror})") from exc
    signer = keys.watchlist_signing_key().public_key()
    trusted = {key_id(signer): signer}
    try:
        opened: OpenedWatchlist = open_hub_copy(data, keys.alert_private_key(), trusted.get)
    except WatchlistError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    try:
        return HubWatchlist(
            watchlist_hash=opened.watchlist_hash,
            deployment_id=opened.deployment_id,
            model_id=opened.model_id,
            model_sha256=opened.model_sha256,
            refs=list(opened.refs),
            embeddings=np.array(opened.embeddings, dtype=np.float16),
            subjects=_subjects(path),
        )
    finally:
        opened.wipe()
