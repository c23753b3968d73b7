"""Reading the characters of one text line: the PP-OCR CTC recogniser.

The line is cut out of the frame along its rotated box (perspective-corrected to an
upright strip), scaled to the model's height of 48 pixels and scaled to −1…1. The model
returns, for every horizontal step, a probability over its character list (read from the
model file's own ``character`` metadata, so the list is pinned with the file). Decoding
is greedy CTC restricted to what a UK plate can hold (A–Z, 0–9; a space only separates):
Chinese characters and punctuation the model also knows can never be read. Each read
character keeps the probabilities of every plate character at its strongest step, so
the format rules can resolve a confusion with the recogniser's own second choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from agent.camera.frame_source import BgrImage
from agent.errors import ModelError
from agent.plates.text_detector import FloatArray
from agent.plates.uk_plate_format import ALPHABET
from agent.vision.model_store import PinnedModel
from agent.vision.onnx_session import open_session

INPUT_HEIGHT = 48
MAX_INPUT_WIDTH = 480
#: Probabilities below this are left out of a character's choices.
_MIN_CHOICE = 1e-3


@dataclass(frozen=True)
class LineRead:
    """The characters read on one line and, per character, the plate characters'
    probabilities at its strongest step (the read character's own is ``confidences[i]``)."""

    chars: str
    confidences: tuple[float, ...]
    choices: tuple[dict[str, float], ...]


def _character_list(session: Any, model: PinnedModel) -> list[str]:
    meta = session.get_modelmeta().custom_metadata_map
    text = meta.get("character")
    if not isinstance(text, str) or not text:
        raise ModelError(
            f"models: {model.role} {model.path} carries no 'character' list in its metadata"
        )
    chars = text.split("\n")
    if chars and chars[-1] == "":
        chars.pop()
    # CTC: class 0 is the blank; the model's last class is the space.
    return ["", *chars, " "]


def rectify(image: BgrImage, quad: FloatArray, height: int = INPUT_HEIGHT) -> BgrImage:
    """The quadrilateral ``quad`` (top-left first, clockwise) warped to an upright strip
    ``height`` pixels high, its width keeping the line's aspect."""
    length = float(np.linalg.norm(quad[1] - quad[0]))
    tall = float(np.linalg.norm(quad[3] - quad[0]))
    width = round(height * length / max(tall, 1.0))
    width = max(8, min(MAX_INPUT_WIDTH, width))
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    out = cv2.warpPerspective(
        image, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(out, dtype=np.uint8)


class TextRecogniser:
    def __init__(self, model: PinnedModel, *, threads: int = 1) -> None:
        self.model = model
        self._session: Any = open_session(model, threads)
        self._input = self._session.get_inputs()[0].name
        classes = _character_list(self._session, model)
        out_dim = self._session.get_outputs()[0].shape[-1]
        if isinstance(out_dim, int) and out_dim != len(classes):
            raise ModelError(
                f"models: {model.role} {model.path} has {out_dim} classes but lists "
                f"{len(classes)} characters"
            )
        wanted = [0] + [i for i, c in enumerate(classes) if c in ALPHABET or c == " "]
        self._keep = np.array(wanted, dtype=np.int64)
        self._kept_chars = [classes[i] for i in wanted]
        self._plate_cols = [
            j for j, c in enumerate(self._kept_chars) if c in ALPHABET
        ]  # within kept

    def read_strip(self, strip: BgrImage) -> LineRead:
        """Read an upright strip already ``INPUT_HEIGHT`` pixels high."""
        h, w = strip.shape[:2]
        if h != INPUT_HEIGHT:
            w = max(8, round(w * INPUT_HEIGHT / h))
            strip = np.asarray(
                cv2.resize(strip, (w, INPUT_HEIGHT), interpolation=cv2.INTER_LINEAR), np.uint8
            )
        pad = (-w) % 8  # the model downsamples width by 8
        x = strip.astype(np.float32) * (2.0 / 255.0) - 1.0
        if pad:
            x = np.pad(x, ((0, 0), (0, pad), (0, 0)))
        probs = self._session.run(
            None, {self._input: np.ascontiguousarray(x.transpose(2, 0, 1)[None])}
        )[0][0]
        return self._decode(probs[:, self._keep])

    def read(self, image: BgrImage, quad: FloatArray) -> LineRead:
        return self.read_strip(rectify(image, quad))

    def _decode(self, probs: FloatArray) -> LineRead:
        best = probs.argmax(axis=1)
        chars: list[str] = []
        confs: list[float] = []
        choices: list[dict[str, float]] = []
        prev = 0
        run_at = -1
        for t, k in enumerate(best):
            k = int(k)
            if k == 0 or self._kept_chars[k] == " ":
                prev = k
                continue
            p = float(probs[t, k])
            if k != prev:
                chars.append(self._kept_chars[k])
                confs.append(p)
                run_at = t
                choices.append({})
            elif p > confs[-1]:
                confs[-1] = p
                run_at = t
            else:
                prev = k
                continue
            row = probs[run_at]
            choices[-1] = {
                self._kept_chars[j]: float(row[j])
                for j in self._plate_cols
                if row[j] >= _MIN_CHOICE
            }
            choices[-1][chars[-1]] = p
            prev = k
        return LineRead("".join(chars), tuple(confs), tuple(choices))
