"""Associating face detections across frames into tracks with stable ids.

Each track predicts its next box from its last velocity; detections are matched
to predictions greedily by IoU (highest first) above ``iou_threshold`` (a track
seen in the previous frame may also match by its last box). A track
unseen for more than ``max_missed_frames`` frames ends. The tracker holds only
boxes; what the pipeline keeps per track lives beside it and is purged when the
track ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.vision.face_detector import Detection, FloatArray, iou


@dataclass(slots=True)
class Track:
    track_id: int
    box: FloatArray
    velocity: FloatArray
    first_seen_t: float
    last_seen_t: float
    hits: int = 1
    missed: int = 0

    def predicted(self) -> FloatArray:
        p = self.box.copy()
        p[:2] += self.velocity * (self.missed + 1)
        return p


class FaceTracker:
    def __init__(self, iou_threshold: float = 0.3, max_missed_frames: int = 10) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed_frames = max_missed_frames
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(
        self, detections: list[Detection], t_mono: float
    ) -> tuple[list[tuple[Track, Detection]], list[Track], list[Track]]:
        """Feed one frame's detections. Returns (matched pairs, new tracks, ended tracks).

        New tracks also appear in the matched pairs with their first detection.
        """
        pairs: list[tuple[float, int, int]] = []
        track_list = list(self.tracks.values())
        for ti, tr in enumerate(track_list):
            pred = tr.predicted()
            for di, d in enumerate(detections):
                v = iou(pred, d.box)
                if v < self.iou_threshold and tr.missed == 0:
                    # A fast face may outrun its prediction: also try its last box. Not
                    # after a gap: a face that walked on is somewhere ahead by now, and
                    # whoever appears where it was last seen is someone else (who must
                    # be compared, not inherit its decision).
                    v = max(v, iou(tr.box, d.box))
                if v >= self.iou_threshold:
                    pairs.append((v, ti, di))
        pairs.sort(key=lambda p: -p[0])
        used_t: set[int] = set()
        used_d: set[int] = set()
        matched: list[tuple[Track, Detection]] = []
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            tr, d = track_list[ti], detections[di]
            step = (d.box[:2] - tr.box[:2]) / (tr.missed + 1)
            tr.velocity = (0.5 * tr.velocity + 0.5 * step).astype(np.float32)
            tr.box = d.box.copy()
            tr.last_seen_t = t_mono
            tr.hits += 1
            tr.missed = 0
            matched.append((tr, d))
        ended: list[Track] = []
        for ti, tr in enumerate(track_list):
            if ti in used_t:
                continue
            tr.missed += 1
            if tr.missed > self.max_missed_frames:
                ended.append(self.tracks.pop(tr.track_id))
        started: list[Track] = []
        for di, d in enumerate(detections):
            if di in used_d:
                continue
            tr = Track(self._next_id, d.box.copy(), np.zeros(2, np.float32), t_mono, t_mono)
            self._next_id += 1
            self.tracks[tr.track_id] = tr
            started.append(tr)
            matched.append((tr, d))
        return matched, started, ended

    def end_all(self) -> list[Track]:
        ended = list(self.tracks.values())
        self.tracks.clear()
        return ended
