"""The bound hotlist in memory: keyed hashes of plates, looked up by a read's hash.

A read is hashed with the deployment's hotlist key (``hotlist_bundle.plate_digest``) and
looked up; a hit names the entry's opaque reference. The matcher holds the key, the
digests, references and entry expiries, never a plate. ``clear()`` overwrites the key.
"""

from __future__ import annotations

from agent.matching.hotlist_bundle import OpenedHotlist, plate_digest


class HotlistMatcher:
    def __init__(self, opened: OpenedHotlist) -> None:
        self._key = bytearray(opened.key)
        self._entries: dict[bytes, tuple[str, float]] = {
            d: (ref, exp)
            for d, ref, exp in zip(opened.digests(), opened.refs, opened.entry_expires, strict=True)
        }

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, plate: str, now: float) -> str | None:
        """The entry reference a plate (normal form) hits, or None (also past the entry's
        own expiry, or after ``clear()``)."""
        if not self._entries:
            return None
        hit = self._entries.get(plate_digest(self._key, plate))
        if hit is None or now >= hit[1]:
            return None
        return hit[0]

    def clear(self) -> None:
        self._key[:] = bytes(len(self._key))
        self._entries.clear()
