"""The live face pipeline: detect → track → quality → embed the best shots → match → decide.

``FacePipeline.process(frame)`` runs every stage for one frame and returns the
alert decisions made on it (``MatchCandidate``: everything an operator needs to
adjudicate). Embedding is the expensive step (≈ 30 ms per face against ≈ 7 ms
for detecting a 640-wide frame), so a track is embedded only when a shot passes
the quality gate and is better than its shots so far (or, every
``attempt_interval_frames``, nearly as good), at most ``max_attempts_per_track``
times (``attempts_after_match`` more after an alert). Shots are fused along the
track (``matching.fusion``). Each comparison is ``Gallery.rank`` in the score kind of
the activation (cosine or S-norm), and an entry alerts only when its score reaches the
threshold and its cosine the floor (``Matcher``).

Non-match data: frames, aligned faces, embeddings and scores are locals of one
``process`` call and are dropped when it returns; the only per-face data kept
between frames is the fused shot state of live tracks, purged when the track
ends or ``reset()`` is called. Nothing is written or logged; only the aggregate
``counters`` and stage ``timings`` (durations, no face data) survive. A face
crop leaves the pipeline only inside a ``MatchCandidate``.

Threading: call ``process`` from one thread only. ``threads`` (None: the
config's ``models.threads``, where 0 means every usable core) sets the model
threads; onnxruntime releases the GIL while a model runs.
- ``threads=1``: everything runs inside ``process`` on the caller's thread, the
  decisions for a frame come back from that frame's ``process`` call. This is the
  single-threaded baseline.
- ``threads>1``: two stages. ``process`` detects, tracks and picks shots on the
  caller's thread (detector with ``threads`` intra-op threads) and hands the
  picked faces to one embedding thread (embedder with ``threads-1`` intra-op
  threads), so detecting the next frames overlaps embedding and a burst of new
  faces does not stall the camera. Comparison and the decision run back on the
  caller's thread when ``process`` collects finished embeddings: a decision is
  returned by a later ``process`` call (or ``flush()``) and carries its frame's
  seq and t_mono, so frame-to-decision latency is measurable. At most
  ``_MAX_PENDING`` batches wait; while the queue is full no new shot is picked.
All faces picked on one frame are embedded in one call.
"""

from __future__ import annotations

import math
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from agent.camera.frame_source import BgrImage, Frame
from agent.config import AgentConfig
from agent.errors import CheckFailed, ModelError
from agent.matching.gallery import Gallery
from agent.matching.matcher import Matcher
from agent.matching.score_normalisation import check_score_kind
from agent.vision.face_align import align_face
from agent.vision.face_detector import Detection, FaceDetector
from agent.vision.face_embedder import FaceEmbedder
from agent.vision.face_quality import (
    FaceQuality,
    assess_face,
    inter_eye_distance,
    yaw_from_landmarks,
)
from agent.vision.face_tracker import FaceTracker, Track
from agent.vision.model_store import PinnedModel
from agent.vision.onnx_session import resolve_threads
from agent.vision.shot_fusion import ShotAccumulator
from agent.vision.stage_timings import StageTimings

_CROP_MARGIN = 0.25  # of the box size, around the face in the probe crop
#: Longest side of the scene context image: enough to see where the person stood and
#: with whom, small enough for a cellular link (about 40–80 KB as JPEG).
SCENE_MAX_SIDE = 640
_SCENE_BOX_BGR = (0, 200, 255)  # amber: visible on most street scenes
_BETTER_SHOT = 1.15  # a shot this much better than the best so far is worth an attempt
_MAX_PENDING = 2  # embedding batches in flight in the two-stage mode


@dataclass(frozen=True, eq=False)
class MatchCandidate:
    """An alert decision: a probe face that matched a watchlist entry, for human adjudication."""

    track_id: int
    ref: str  # the watchlist entry reference
    score: float
    threshold: float
    model_id: str
    crop: BgrImage  # the probe face (with a margin), BGR
    box: tuple[float, float, float, float]  # x, y, w, h in frame pixels
    # The frame the decision was made on, downscaled, with the face's box drawn: context
    # for the operator. Made only for a match, sealed with the crop.
    scene: BgrImage
    quality: dict[str, float]
    frame_seq: int
    frame_t_mono: float
    first_seen_t_mono: float
    decision_t_mono: float


@dataclass
class PipelineCounters:
    """Aggregate counts only: they survive a deployment for its results summary."""

    frames: int = 0
    faces_detected: int = 0
    faces_passed_quality: int = 0
    embeddings: int = 0
    faces_compared: int = 0
    tracks_started: int = 0
    tracks_ended: int = 0
    matches: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _TrackShots:
    """What the pipeline holds for one live track; purged when the track ends."""

    shots: ShotAccumulator
    first_seen_t: float
    attempts: int = 0
    attempts_after_match: int = 0
    best_rank: float = 0.0
    last_attempt_seq: int = -(10**9)
    alerted: bool = False
    in_flight: int = 0  # embedding batches not yet collected
    ended: bool = False  # the track ended while a batch was in flight


@dataclass
class _EmbedJob:
    future: Future[np.ndarray]
    frame: Frame
    items: list[tuple[int, Detection, FaceQuality]]
    epoch: int


class FacePipeline:
    def __init__(
        self, cfg: AgentConfig, models: dict[str, PinnedModel], threads: int | None = None
    ) -> None:
        self.cfg = cfg
        self.threads = resolve_threads(cfg.models.threads if threads is None else threads)
        d = cfg.detector
        self.detector = FaceDetector(
            models["detector"],
            input_long_side=d.input_long_side,
            score_threshold=d.score_threshold,
            nms_threshold=d.nms_threshold,
            roi=d.roi,
            threads=self.threads,
        )
        self.embedder = FaceEmbedder(
            models["embedder"],
            threads=max(1, self.threads - 1),
            flip=cfg.matching.flip_augment,
        )
        self.model_id = models["embedder"].model_id
        self.two_stage = self.threads > 1
        self._executor = (
            ThreadPoolExecutor(1, thread_name_prefix="lfr-embed") if self.two_stage else None
        )
        self._pending: deque[_EmbedJob] = deque()
        self._epoch = 0
        self.tracker = FaceTracker(cfg.tracker.iou_threshold, cfg.tracker.max_missed_frames)
        self.counters = PipelineCounters()
        self.timings = StageTimings()
        self._tracks: dict[int, _TrackShots] = {}
        self._gallery: Gallery | None = None
        self.score_kind = "cosine"
        self._matcher = Matcher(1.0, cfg.matching.cooldown_s)

    # -- watchlist -------------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        return self._matcher.threshold

    @property
    def has_watchlist(self) -> bool:
        return self._gallery is not None

    def set_watchlist(
        self,
        gallery: Gallery | None,
        threshold: float,
        model_id: str | None = None,
        score: str = "cosine",
    ) -> None:
        """Match against ``gallery`` at ``threshold`` in score kind ``score`` from now on (None:
        detect and count only).

        ``model_id`` is the embedder the gallery was built with; a different one is refused.
        A cosine threshold below ``matching.threshold_floor`` is refused; whatever the kind,
        no entry alerts with a cosine below the floor. An S-norm watchlist's cohort
        statistics are computed here (CohortTooSmall when it is too small). Live track state
        is purged.
        """
        floor = self.cfg.matching.threshold_floor
        check_score_kind(score)
        if score == "cosine" and not floor <= threshold <= 1.0:
            raise CheckFailed(f"matching: threshold {threshold} is outside {floor}–1 (floor)")
        if not math.isfinite(threshold):
            raise CheckFailed(f"matching: threshold {threshold} is not a finite number")
        if gallery is not None:
            if model_id is not None and model_id != self.model_id:
                raise ModelError(
                    f"matching: watchlist was built with model {model_id}, this device runs {self.model_id}"
                )
            if gallery.dim != self.embedder.dim:
                raise ModelError(
                    f"matching: watchlist embeddings are {gallery.dim}-d, the embedder gives {self.embedder.dim}"
                )
            gallery.prepare(score)
        self._purge_tracks()
        self._gallery = gallery
        self.score_kind = score
        self._matcher = Matcher(threshold, self.cfg.matching.cooldown_s, cosine_floor=floor)

    # -- per frame -------------------------------------------------------------------------

    def process(self, frame: Frame) -> list[MatchCandidate]:
        """Run one frame through the pipeline; the alert decisions made by now.

        Single-threaded: the decisions made on this frame. Two-stage: those of any earlier
        frame whose embeddings have finished (see the module docstring).
        """
        image = frame.image
        self.counters.frames += 1
        with self.timings.measure("detect"):
            detections = self.detector.detect(image)
        self.counters.faces_detected += len(detections)
        matched, started, ended = self.tracker.update(detections, frame.t_mono)
        self.counters.tracks_started += len(started)
        for tr in ended:
            self._end_track(tr.track_id)
        out = self._collect(wait=False)
        if self._gallery is None or not len(self._gallery):
            return out
        for tr in started:
            self._tracks[tr.track_id] = _TrackShots(
                ShotAccumulator(self.cfg.matching.fusion), tr.first_seen_t
            )
        if len(self._pending) >= _MAX_PENDING:
            return out  # the embedding stage is busy: pick shots again on a later frame
        selected = self._select_shots(frame, matched)
        if not selected:
            return out
        self.counters.embeddings += len(selected)
        faces = [aligned for _, _, aligned, _ in selected]
        items = [(track_id, det, quality) for track_id, det, _, quality in selected]
        del selected
        if self._executor is None:
            embeddings = self._embed(faces)
            out.extend(self._compare_all(frame, items, embeddings))
            del embeddings  # non-match data ends here
            return out
        for track_id, _, _ in items:
            self._tracks[track_id].in_flight += 1
        future = self._executor.submit(self._embed, faces)
        self._pending.append(_EmbedJob(future, frame, items, self._epoch))
        return out

    def flush(self) -> list[MatchCandidate]:
        """Wait for embeddings in flight and return their decisions (two-stage mode)."""
        return self._collect(wait=True)

    def _embed(self, faces: list[BgrImage]) -> np.ndarray:
        with self.timings.measure("embed"):
            return self.embedder.embed(faces)

    def _collect(self, wait: bool) -> list[MatchCandidate]:
        out: list[MatchCandidate] = []
        while self._pending and (wait or self._pending[0].future.done()):
            job = self._pending.popleft()
            embeddings = job.future.result()
            if job.epoch == self._epoch:
                out.extend(self._compare_all(job.frame, job.items, embeddings))
                for track_id, _, _ in job.items:
                    state = self._tracks.get(track_id)
                    if state is None:
                        continue
                    state.in_flight -= 1
                    if state.ended and state.in_flight == 0:
                        self._purge_track(track_id)
            del embeddings, job  # non-match data ends here
        return out

    def _compare_all(
        self,
        frame: Frame,
        items: list[tuple[int, Detection, FaceQuality]],
        embeddings: np.ndarray,
    ) -> list[MatchCandidate]:
        out: list[MatchCandidate] = []
        for (track_id, det, quality), emb in zip(items, embeddings, strict=True):
            out.extend(self._compare(frame, track_id, det, quality, emb))
        return out

    def _select_shots(
        self, frame: Frame, matched: list[tuple[Track, Detection]]
    ) -> list[tuple[int, Detection, BgrImage, FaceQuality]]:
        m, q = self.cfg.matching, self.cfg.quality
        selected = []
        for tr, det in matched:
            track_id = tr.track_id
            state = self._tracks[track_id]
            if state.ended:
                continue
            if state.alerted:
                if state.attempts_after_match >= m.attempts_after_match:
                    continue
            elif state.attempts >= m.max_attempts_per_track:
                continue
            # Cheap checks on the landmarks first: most rejected faces never get aligned.
            if (
                det.score < q.min_detector_score
                or inter_eye_distance(det.landmarks) < q.min_inter_eye_px
                or yaw_from_landmarks(det.landmarks) > q.max_yaw
            ):
                continue
            with self.timings.measure("align"):
                aligned = align_face(frame.image, det.landmarks)
                quality = assess_face(det.landmarks, det.score, aligned, q)
            if not quality.passes:
                continue
            self.counters.faces_passed_quality += 1
            rank = quality.rank
            worth = (
                state.attempts == 0
                or rank >= state.best_rank * _BETTER_SHOT
                or (
                    frame.seq - state.last_attempt_seq >= m.attempt_interval_frames
                    and rank >= state.best_rank / _BETTER_SHOT
                )
            )
            if not worth:
                continue
            state.best_rank = max(state.best_rank, rank)
            state.last_attempt_seq = frame.seq
            if state.alerted:
                state.attempts_after_match += 1
            else:
                state.attempts += 1
            # The quality checks saw the standard alignment; the embedder may want its own.
            selected.append(
                (track_id, det, self.embedder.crop(frame.image, det.landmarks, aligned), quality)
            )
        return selected

    def _compare(
        self,
        frame: Frame,
        track_id: int,
        det: Detection,
        quality: FaceQuality,
        emb: np.ndarray,
    ) -> list[MatchCandidate]:
        gallery = self._gallery
        assert gallery is not None
        state = self._tracks[track_id]
        with self.timings.measure("match"):
            probe = state.shots.add(emb, quality.rank)
            top = gallery.rank(probe[None, :], self.cfg.matching.top_k, self.score_kind)
            ranked = state.shots.fuse_scores(top.scores[0], top.indices[0], top.cosines[0])
            decisions = self._matcher.decide(
                track_id, ((gallery.refs[i], s, c) for i, s, c in ranked), time.monotonic()
            )
        self.counters.faces_compared += 1
        del probe, top, ranked
        if not decisions:
            return []
        state.alerted = True
        self.counters.matches += len(decisions)
        crop = _crop(frame.image, det)
        scene = _scene(frame.image, det)
        now = time.monotonic()
        return [
            MatchCandidate(
                track_id=track_id,
                ref=ref,
                score=score,
                threshold=self._matcher.threshold,
                model_id=self.model_id,
                crop=crop,
                box=(det.x, det.y, det.w, det.h),
                scene=scene,
                quality=quality.figures(),
                frame_seq=frame.seq,
                frame_t_mono=frame.t_mono,
                first_seen_t_mono=state.first_seen_t,
                decision_t_mono=now,
            )
            for ref, score in decisions
        ]

    # -- state -----------------------------------------------------------------------------

    @property
    def live_tracks(self) -> int:
        return len(self.tracker.tracks)

    @property
    def per_track_state_count(self) -> int:
        """Tracks for which per-face data (fused shots) is held: 0 once all tracks ended."""
        return len(self._tracks)

    def _end_track(self, track_id: int) -> None:
        self.counters.tracks_ended += 1
        state = self._tracks.get(track_id)
        if state is not None and state.in_flight:
            state.ended = True  # purged once its last embedding has been compared
            return
        self._purge_track(track_id)

    def _purge_track(self, track_id: int) -> None:
        state = self._tracks.pop(track_id, None)
        if state is not None:
            state.shots.clear()
        self._matcher.track_ended(track_id)

    def _purge_tracks(self) -> None:
        """Drop every track and anything in flight (results of in-flight work are discarded)."""
        self._epoch += 1
        while self._pending:
            job = self._pending.popleft()
            job.future.result()
            del job
        for tr in self.tracker.end_all():
            self.counters.tracks_ended += 1
            self._purge_track(tr.track_id)
        for track_id in list(self._tracks):
            self._purge_track(track_id)

    def end_tracks(self) -> list[MatchCandidate]:
        """End every live track now (e.g. the camera closed), after finishing work in flight."""
        out = self.flush()
        self._purge_tracks()
        return out

    def reset(self) -> None:
        """Deployment end: purge all track state, work in flight, the matcher's memory and the
        counters. The watchlist reference is dropped too; wiping the gallery itself is its
        owner's job (``Gallery.clear()``).
        """
        self._purge_tracks()
        self._matcher.reset()
        self._gallery = None
        self.score_kind = "cosine"
        self._matcher = Matcher(1.0, self.cfg.matching.cooldown_s)
        self.counters = PipelineCounters()

    def close(self) -> None:
        """Stop the embedding thread; afterwards the pipeline runs single-stage."""
        self._purge_tracks()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _crop(image: BgrImage, det: Detection) -> BgrImage:
    h, w = image.shape[:2]
    mx, my = det.w * _CROP_MARGIN, det.h * _CROP_MARGIN
    x0, y0 = max(0, int(det.x - mx)), max(0, int(det.y - my))
    x1, y1 = min(w, int(det.x + det.w + mx)), min(h, int(det.y + det.h + my))
    return image[y0:y1, x0:x1].copy()


def _scene(image: BgrImage, det: Detection) -> BgrImage:
    """The frame downscaled to at most ``SCENE_MAX_SIDE`` with the face's box drawn."""
    h, w = image.shape[:2]
    scale = min(1.0, SCENE_MAX_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small: BgrImage = (
        np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        if scale < 1.0
        else image.copy()
    )
    x0, y0 = round(det.x * scale), round(det.y * scale)
    x1, y1 = round((det.x + det.w) * scale), round((det.y + det.h) * scale)
    thickness = max(2, round(max(size) / 320))
    cv2.rectangle(small, (x0, y0), (x1, y1), _SCENE_BOX_BGR, thickness)
    return small
