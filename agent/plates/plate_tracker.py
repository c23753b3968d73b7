"""Following one vehicle's plate across the frames the plate pipeline reads.

Vehicles move further between read frames than faces do between camera frames (the plate
pipeline reads a few frames a second), so plates are associated by distance rather than
overlap: a candidate continues the track whose predicted centre (last centre plus its
last step) is nearest, if that is within ``MAX_STEP_PLATE_WIDTHS`` plate widths and the
two are of similar size. Nearest pairs are taken first. A track unseen for more than
``max_missed_frames`` read frames ends. The tracker holds only positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agent.plates.plate_finder import PlateCandidate

MAX_STEP_PLATE_WIDTHS = 1.5
SIZE_RATIO = 1.8


@dataclass(slots=True)
class PlateTrack:
    track_id: int
    centre: tuple[float, float]
    width: float
    step: tuple[float, float]
    first_seen_t: float
    last_seen_t: float
    hits: int = 1
    missed: int = 0

    def predicted(self) -> tuple[float, float]:
        k = self.missed + 1
        return self.centre[0] + self.step[0] * k, self.centre[1] + self.step[1] * k


class PlateTracker:
    def __init__(self, max_missed_frames: int = 8) -> None:
        self.max_missed_frames = max_missed_frames
        self.tracks: dict[int, PlateTrack] = {}
        self._next_id = 1

    def update(
        self, candidates: Sequence[PlateCandidate], t_mono: float
    ) -> tuple[list[tuple[PlateTrack, PlateCandidate]], list[PlateTrack]]:
        """Feed one read frame's candidates: (track, candidate) pairs (new tracks
        included) and the tracks that ended."""
        options: list[tuple[float, int, int]] = []
        tracks = list(self.tracks.values())
        for ti, tr in enumerate(tracks):
            px, py = tr.predicted()
            for ci, c in enumerate(candidates):
                ratio = c.width / max(tr.width, 1e-6)
                if not 1 / SIZE_RATIO <= ratio <= SIZE_RATIO:
                    continue
                cx, cy = c.centre
                d = math.hypot(cx - px, cy - py)
                if d <= MAX_STEP_PLATE_WIDTHS * max(tr.width, c.width):
                    options.append((d, ti, ci))
        options.sort()
        taken_t: set[int] = set()
        taken_c: set[int] = set()
        pairs: list[tuple[PlateTrack, PlateCandidate]] = []
        for _, ti, ci in options:
            if ti in taken_t or ci in taken_c:
                continue
            taken_t.add(ti)
            taken_c.add(ci)
            tr, c = tracks[ti], candidates[ci]
            cx, cy = c.centre
            k = tr.missed + 1
            tr.step = ((cx - tr.centre[0]) / k, (cy - tr.centre[1]) / k)
            tr.centre, tr.width = (cx, cy), c.width
            tr.last_seen_t, tr.missed = t_mono, 0
            tr.hits += 1
            pairs.append((tr, c))
        ended: list[PlateTrack] = []
        for ti, tr in enumerate(tracks):
            if ti in taken_t:
                continue
            tr.missed += 1
            if tr.missed > self.max_missed_frames:
                ended.append(self.tracks.pop(tr.track_id))
        for ci, c in enumerate(candidates):
            if ci in taken_c:
                continue
            tr = PlateTrack(self._next_id, c.centre, c.width, (0.0, 0.0), t_mono, t_mono)
            self._next_id += 1
            self.tracks[tr.track_id] = tr
            pairs.append((tr, c))
        return pairs, ended

    def end_all(self) -> list[PlateTrack]:
        ended = list(self.tracks.values())
        self.tracks.clear()
        return ended

    def reset(self) -> None:
        self.tracks.clear()
