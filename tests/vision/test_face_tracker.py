"""Tracks keep their ids while faces move, and end after max_missed_frames."""

from __future__ import annotations

import numpy as np

from agent.vision.face_detector import Detection
from agent.vision.face_tracker import FaceTracker


def det(x: float, y: float, w: float = 60) -> Detection:
    return Detection(np.array([x, y, w, w], np.float32), 0.9, np.zeros((5, 2), np.float32))


def test_two_moving_faces_keep_their_ids() -> None:
    tr = FaceTracker(iou_threshold=0.3, max_missed_frames=2)
    ids_a, ids_b = set(), set()
    for i in range(20):
        # A moves right fast (25 px/frame on a 60 px box: IoU with last box alone is low);
        # B moves left; they cross.
        a, b = det(100 + 25 * i, 100), det(700 - 20 * i, 110)
        matched, _, _ = tr.update([b, a], float(i))
        by_det = {id(d): t.track_id for t, d in matched}
        ids_a.add(by_det[id(a)])
        ids_b.add(by_det[id(b)])
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_track_survives_short_gaps_and_ends_after_max_missed() -> None:
    tr = FaceTracker(iou_threshold=0.3, max_missed_frames=2)
    _, started, _ = tr.update([det(100, 100)], 0.0)
    first = started[0].track_id
    tr.update([], 1.0)
    tr.update([], 2.0)
    matched, started, ended = tr.update([det(102, 100)], 3.0)
    assert started == [] and ended == [] and matched[0][0].track_id == first
    for t in (4.0, 5.0):
        assert tr.update([], t)[2] == []
    ended = tr.update([], 6.0)[2]
    assert [t.track_id for t in ended] == [first] and tr.tracks == {}
    _, started, _ = tr.update([det(102, 100)], 7.0)
    assert started[0].track_id != first  # ids are never reused


def test_end_all() -> None:
    tr = FaceTracker()
    tr.update([det(0, 0), det(300, 300)], 0.0)
    assert len(tr.end_all()) == 2 and tr.tracks == {}


def test_someone_appearing_where_a_moving_track_was_lost_is_a_new_track() -> None:
    # A walks right at 20 px/frame and is lost (behind a pole, out of the picture); a
    # stranger then stands where A was last seen. The stranger must get a track of its
    # own (and so be compared), not inherit A's (perhaps already decided) one.
    tr = FaceTracker(iou_threshold=0.3, max_missed_frames=10)
    for i in range(5):
        tr.update([det(100 + 20 * i, 100)], float(i))
    (a,) = tr.tracks.values()
    tr.update([], 5.0)
    tr.update([], 6.0)
    matched, started, _ = tr.update([det(180, 100)], 7.0)
    assert [t.track_id for t in started] == [matched[0][0].track_id]
    assert started[0].track_id != a.track_id
