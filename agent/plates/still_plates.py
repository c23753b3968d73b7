"""The plate models on single images (evaluation, tools): every plate read in a still.

Runs the live pipeline's stages once (text detection, plate finding, reading, UK format)
without tracking or voting: each candidate's best format interpretation is one read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.camera.frame_source import BgrImage
from agent.plates.plate_finder import find_candidates
from agent.plates.text_detector import TextDetector
from agent.plates.text_recogniser import TextRecogniser
from agent.plates.uk_plate_format import interpret
from agent.vision.model_store import PinnedModel


@dataclass(frozen=True)
class StillRead:
    plate: str  # normal form
    confidence: float
    format: str
    region: tuple[int, int, int, int]


class StillPlateReader:
    def __init__(
        self,
        models: dict[str, PinnedModel],
        *,
        threads: int = 1,
        detect_long_side: int = 640,
        detect_threshold: float = 0.3,
        min_text_height_px: float = 10.0,
        roi: Sequence[float] = (),
    ) -> None:
        self.detector = TextDetector(
            models["plate_detector"],
            threads=threads,
            long_side=detect_long_side,
            threshold=detect_threshold,
        )
        self.recogniser = TextRecogniser(models["plate_recogniser"], threads=threads)
        self.min_text_height_px = min_text_height_px
        self.roi = tuple(roi)

    def read(self, image: BgrImage) -> list[StillRead]:
        h, w = image.shape[:2]
        candidates = find_candidates(
            self.detector.detect(image),
            (w, h),
            min_text_height_px=self.min_text_height_px,
            roi=self.roi,
        )
        out = []
        for cand in candidates:
            chars: list[str] = []
            choices: list[dict[str, float]] = []
            for line in cand.lines:
                r = self.recogniser.read(image, line.quad)
                chars += list(r.chars)
                choices += list(r.choices)
            readings = interpret(chars, choices)
            if readings:
                best = readings[0]
                out.append(StillRead(best.plate, best.char_confidence, best.format, cand.region))
        return out
