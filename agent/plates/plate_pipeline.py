"""The live plate pipeline: detect text → find plates → read → UK format → track → vote →
hotlist → decide.

``PlatePipeline.process(frame)`` reads at most ``plates.max_fps`` frames a second (the
rest are counted and skipped: a vehicle stays in view for many frames) and returns the
hits decided on that frame (``PlateHit``: everything an operator needs to check one).
Each vehicle's plate is read on up to ``reads_per_vehicle`` frames; its reads are voted
(``plate_vote``) and the vehicle is decided once ``min_reads`` reads agree, when the
reads run out, or when it leaves. A decided vehicle is not read again.

Non-hit data: frames, text lines, reads, per-vehicle votes and crops of vehicles not on
the hotlist are locals of one ``process`` call or per-track state that is cleared when
the vehicle is decided (or ``reset()``); nothing is written or logged. A plate's text
and crop leave the pipeline only inside a ``PlateHit``. Only aggregate ``counters`` and
stage ``timings`` survive (for the deployment report and the benchmark).

Threading: call ``process`` from one thread only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from agent.camera.frame_source import BgrImage, Frame
from agent.config import AgentConfig
from agent.plates.hotlist_matcher import HotlistMatcher
from agent.plates.plate_finder import PlateCandidate, background_colour, find_candidates
from agent.plates.plate_tracker import PlateTrack, PlateTracker
from agent.plates.plate_vote import PlateVote, VoteResult
from agent.plates.text_detector import TextDetector
from agent.plates.text_recogniser import TextRecogniser
from agent.plates.uk_plate_format import display, interpret
from agent.vision.model_store import PinnedModel
from agent.vision.onnx_session import resolve_threads

STAGES = ("detect", "read")
#: The vehicle crop around a plate, in plate widths: most of a car's rear or front.
_VEHICLE_LEFT_RIGHT = 1.6
_VEHICLE_ABOVE = 2.2
_VEHICLE_BELOW = 0.6
VEHICLE_MAX_SIDE = 640
_TIMING_SAMPLES = 20000


@dataclass(frozen=True, eq=False)
class PlateHit:
    """A vehicle whose voted plate is on the hotlist, for an operator to check."""

    track_id: int
    ref: str  # the hotlist entry reference
    plate: str  # display form, e.g. "AB12 CDE"
    confidence: float
    threshold: float
    model_id: str
    plate_crop: BgrImage
    vehicle_crop: BgrImage
    reads: int
    agreeing: int
    plate_format: str
    colour: str
    frame_seq: int
    first_seen_t_mono: float
    decision_t_mono: float


@dataclass
class PlateCounters:
    """Aggregate counts only: they survive a deployment for its results summary."""

    frames: int = 0  # handed to the pipeline
    frames_read: int = 0  # of them, read (the rest skipped by plates.max_fps)
    text_lines: int = 0
    plate_candidates: int = 0
    reads: int = 0  # candidates read as a UK plate
    vehicles: int = 0  # plate tracks started
    plates_read: int = 0  # vehicles decided with a voted plate
    hits: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class StageTimings:
    """Durations (seconds) of each stage per read frame, newest kept; no plate data."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[float]] = {s: deque(maxlen=_TIMING_SAMPLES) for s in STAGES}

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._samples[stage].append(time.perf_counter() - t0)

    def samples(self, stage: str) -> list[float]:
        return list(self._samples[stage])

    def clear(self) -> None:
        for s in self._samples.values():
            s.clear()


@dataclass
class _Vehicle:
    """Per-track state while undecided: the vote and the best read's crops (RAM only)."""

    vote: PlateVote
    decided: bool = False
    best_confidence: float = -1.0
    best_crop: BgrImage | None = field(default=None, repr=False)
    best_vehicle: BgrImage | None = field(default=None, repr=False)
    best_colour: str = "other"
    best_format: str = ""

    def forget(self) -> None:
        self.vote.clear()
        self.best_crop = self.best_vehicle = None


class PlatePipeline:
    def __init__(
        self,
        cfg: AgentConfig,
        models: dict[str, PinnedModel],
        *,
        threads: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        p = cfg.plates
        self.cfg = cfg
        n = resolve_threads(cfg.models.threads if threads is None else threads)
        self.detector = TextDetector(
            models["plate_detector"],
            threads=n,
            long_side=p.detect_long_side,
            threshold=p.detect_threshold,
        )
        self.recogniser = TextRecogniser(models["plate_recogniser"], threads=n)
        self.model_id = models["plate_recogniser"].model_id
        self.tracker = PlateTracker(p.max_missed_frames)
        self.counters = PlateCounters()
        self.timings = StageTimings()
        self._wall = clock
        self._min_interval = 1.0 / p.max_fps
        self._last_read_t: float | None = None
        self._vehicles: dict[int, _Vehicle] = {}
        self._hotlist: HotlistMatcher | None = None
        self._threshold = 1.0
        self._last_hit_at: dict[str, float] = {}

    # -- deployment ---------------------------------------------------------------------
    def set_hotlist(self, hotlist: HotlistMatcher, threshold: float) -> None:
        self._hotlist = hotlist
        self._threshold = threshold

    @property
    def has_hotlist(self) -> bool:
        return self._hotlist is not None

    def reset(self) -> None:
        """Forget every vehicle, the hotlist and the counters (deployment end)."""
        for v in self._vehicles.values():
            v.forget()
        self._vehicles.clear()
        self.tracker.reset()
        self._hotlist = None
        self._last_hit_at.clear()
        self._last_read_t = None
        self.counters = PlateCounters()

    def close(self) -> None:
        self.reset()

    @property
    def live_vehicles(self) -> int:
        return len(self._vehicles)

    # -- per frame ----------------------------------------------------------------------
    def process(self, frame: Frame) -> list[PlateHit]:
        self.counters.frames += 1
        if self._last_read_t is not None and frame.t_mono - self._last_read_t < (
            self._min_interval * 0.999
        ):
            return []
        self._last_read_t = frame.t_mono
        self.counters.frames_read += 1
        image = frame.image
        h, w = image.shape[:2]
        with self.timings.measure("detect"):
            lines = self.detector.detect(image)
            candidates = find_candidates(
                lines,
                (w, h),
                min_text_height_px=self.cfg.plates.min_text_height_px,
                roi=self.cfg.plates.roi,
            )
        self.counters.text_lines += len(lines)
        self.counters.plate_candidates += len(candidates)
        pairs, ended = self.tracker.update(candidates, frame.t_mono)
        hits: list[PlateHit] = []
        with self.timings.measure("read"):
            for track, cand in pairs:
                vehicle = self._vehicles.get(track.track_id)
                if vehicle is None:
                    vehicle = self._vehicles[track.track_id] = _Vehicle(
                        PlateVote(self.cfg.plates.min_reads)
                    )
                    self.counters.vehicles += 1
                if vehicle.decided:
                    continue
                if _cut_by_frame_edge(cand, w, h):
                    # Part of the plate is out of view: its read would be of some of the
                    # characters and would count against the full reads in the vote.
                    continue
                self._read(image, cand, vehicle)
                result = vehicle.vote.result()
                if result is None:
                    continue
                agreed = result.agreeing >= self.cfg.plates.min_reads
                if agreed or vehicle.vote.reads >= self.cfg.plates.reads_per_vehicle:
                    hit = self._decide(track, vehicle, result, frame)
                    if hit is not None:
                        hits.append(hit)
        for track in ended:
            hit = self._end(track, frame)
            if hit is not None:
                hits.append(hit)
        del image, lines, candidates, pairs
        return hits

    def end_tracks(self, frame: Frame | None = None) -> list[PlateHit]:
        """Decide every vehicle still in view (deployment end)."""
        hits = []
        for track in self.tracker.end_all():
            hit = self._end(track, frame)
            if hit is not None:
                hits.append(hit)
        return hits

    # -- internals ----------------------------------------------------------------------
    def _read(self, image: BgrImage, cand: PlateCandidate, vehicle: _Vehicle) -> None:
        chars: list[str] = []
        choices: list[dict[str, float]] = []
        for line in cand.lines:
            read = self.recogniser.read(image, line.quad)
            chars += list(read.chars)
            choices += list(read.choices)
        readings = interpret(chars, choices)
        if not readings:
            return
        best = readings[0]
        self.counters.reads += 1
        vehicle.vote.add(best.plate, best.char_confidence)
        if best.char_confidence > vehicle.best_confidence:
            vehicle.best_confidence = best.char_confidence
            x0, y0, x1, y1 = cand.region
            vehicle.best_crop = image[y0:y1, x0:x1].copy()
            vehicle.best_vehicle = _vehicle_crop(image, cand)
            vehicle.best_colour = background_colour(image, cand)
            vehicle.best_format = best.format

    def _end(self, track: PlateTrack, frame: Frame | None) -> PlateHit | None:
        vehicle = self._vehicles.pop(track.track_id, None)
        if vehicle is None:
            return None
        hit = None
        if not vehicle.decided:
            result = vehicle.vote.result()
            if result is not None:
                hit = self._decide(track, vehicle, result, frame)
        vehicle.forget()
        return hit

    def _decide(
        self, track: PlateTrack, vehicle: _Vehicle, result: VoteResult, frame: Frame | None
    ) -> PlateHit | None:
        vehicle.decided = True
        self.counters.plates_read += 1
        hit = None
        now = self._wall()
        ref = None
        if self._hotlist is not None and result.confidence >= self._threshold:
            ref = self._hotlist.match(result.plate, now)
        if ref is not None and now - self._last_hit_at.get(ref, -1e18) >= (
            self.cfg.plates.cooldown_s
        ):
            self._last_hit_at[ref] = now
            self.counters.hits += 1
            assert vehicle.best_crop is not None and vehicle.best_vehicle is not None
            hit = PlateHit(
                track_id=track.track_id,
                ref=ref,
                plate=display(result.plate),
                confidence=round(result.confidence, 4),
                threshold=self._threshold,
                model_id=self.model_id,
                plate_crop=vehicle.best_crop,
                vehicle_crop=vehicle.best_vehicle,
                reads=result.reads,
                agreeing=result.agreeing,
                plate_format=vehicle.best_format,
                colour=vehicle.best_colour,
                frame_seq=frame.seq if frame is not None else -1,
                first_seen_t_mono=track.first_seen_t,
                decision_t_mono=frame.t_mono if frame is not None else track.last_seen_t,
            )
        # A non-hit's reads and crops go now; a hit's crops live on only in the hit.
        vehicle.forget()
        return hit


def _cut_by_frame_edge(cand: PlateCandidate, w: int, h: int) -> bool:
    """Whether the plate region (text lines and margin, clipped) reaches a frame edge."""
    x0, y0, x1, y1 = cand.region
    return x0 <= 0 or y0 <= 0 or x1 >= w or y1 >= h


def _vehicle_crop(image: BgrImage, cand: PlateCandidate) -> BgrImage:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = cand.region
    pw = max(1, x1 - x0)
    cx = (x0 + x1) / 2
    vx0 = int(max(0, cx - _VEHICLE_LEFT_RIGHT * pw))
    vx1 = int(min(w, cx + _VEHICLE_LEFT_RIGHT * pw))
    vy0 = int(max(0, y0 - _VEHICLE_ABOVE * pw))
    vy1 = int(min(h, y1 + _VEHICLE_BELOW * pw))
    crop = image[vy0:vy1, vx0:vx1]
    scale = VEHICLE_MAX_SIDE / max(crop.shape[:2])
    if scale < 1.0:
        return np.asarray(
            cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8
        )
    return np.ascontiguousarray(crop)
