"""The alert decision: one alert per track per watchlist entry, with a cool-down across tracks.

A score at or above the deployment threshold is a candidate for human
adjudication, provided the entry's raw cosine also reaches the device's floor
(``matching.threshold_floor``): whatever the score kind of the activation
(cosine or S-norm), no alert is raised on a face less similar than the floor. The same track never alerts twice for the same entry, and no
entry alerts again within ``cooldown_s`` of its last alert, whichever track
sees it. The matcher keeps only entries that matched; nothing about
non-matching faces.
"""

from __future__ import annotations

from collections.abc import Iterable


class Matcher:
    def __init__(self, threshold: float, cooldown_s: float, cosine_floor: float = -1.0) -> None:
        self.threshold = float(threshold)
        self.cooldown_s = float(cooldown_s)
        self.cosine_floor = float(cosine_floor)
        self._alerted: dict[int, set[str]] = {}  # track id -> entries it alerted for
        self._last_alert: dict[str, float] = {}  # entry -> t_mono of its last alert

    def decide(
        self, track_id: int, ranked: Iterable[tuple[str, float, float]], t_mono: float
    ) -> list[tuple[str, float]]:
        """Entries (ref, score) that alert now for this track; ``ranked`` holds (ref, score,
        cosine), best score first."""
        out = []
        done = self._alerted.get(track_id, set())
        for ref, score, cosine in ranked:
            if score < self.threshold:
                break
            if ref in done or cosine < self.cosine_floor:
                continue
            last = self._last_alert.get(ref)
            if last is not None and t_mono - last < self.cooldown_s:
                continue
            out.append((ref, score))
            self._last_alert[ref] = t_mono
            self._alerted.setdefault(track_id, set()).add(ref)
        return out

    def has_alerted(self, track_id: int) -> bool:
        return bool(self._alerted.get(track_id))

    def track_ended(self, track_id: int) -> None:
        self._alerted.pop(track_id, None)

    def reset(self) -> None:
        self._alerted.clear()
        self._last_alert.clear()
