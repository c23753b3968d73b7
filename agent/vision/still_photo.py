"""Faces in still photos: the detector, alignment and embedder of the live pipeline, one photo at a time.

Used by ``lfr-agent embed``, watchlist enrolment (quality control of reference
photos) and the evaluation tools. Photos are often tight face crops of
100–250 px, smaller than the faces a street camera sees and filling the whole
picture; when nothing is found at the photo's own size it is tried again
upscaled and then with a border around it, so such crops are still found.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from agent.config import DetectorSection, QualitySection
from agent.vision.face_align import align_face
from agent.vision.face_detector import Detection, FaceDetector, ImageArray
from agent.vision.face_embedder import FaceEmbedder
from agent.vision.face_quality import FaceQuality, assess_face
from agent.vision.model_store import PinnedModel

_MIN_LONG_SIDE = 320  # small photos are upscaled to this before a second try
_BORDER_FRACTION = 0.25  # then padded by this much of the long side on every edge


class StillPhotoAnalyser:
    def __init__(
        self,
        models: dict[str, PinnedModel],
        detector_cfg: DetectorSection | None = None,
        quality_cfg: QualitySection | None = None,
        threads: int = 1,
        flip: bool = False,
    ) -> None:
        dcfg = detector_cfg or DetectorSection()
        self.quality_cfg = quality_cfg or QualitySection()
        self.detector = FaceDetector(
            models["detector"],
            input_long_side=dcfg.input_long_side,
            score_threshold=dcfg.score_threshold,
            nms_threshold=dcfg.nms_threshold,
            threads=threads,
        )
        self.embedder = FaceEmbedder(models["embedder"], threads=threads, flip=flip)
        self.model_id = models["embedder"].model_id

    def detect(self, image: ImageArray) -> list[Detection]:
        """Faces in ``image``, in its pixel coordinates, best score first."""
        _check_image(image)
        faces = self.detector.detect(image)
        if faces:
            return faces
        long_side = max(image.shape[:2])
        limit = self.detector.input_long_side
        if long_side < _MIN_LONG_SIDE:
            faces = self.detector.detect_scaled(image, min(limit, _MIN_LONG_SIDE) / long_side)
            if faces:
                return faces
        pad = round(long_side * _BORDER_FRACTION)
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        big = max(padded.shape[:2])
        scale = min(limit / big, max(1.0, _MIN_LONG_SIDE / big))
        return [d.shifted(-pad, -pad) for d in self.detector.detect_scaled(padded, scale)]

    def assess(self, image: ImageArray, det: Detection) -> FaceQuality:
        return assess_face(
            det.landmarks, det.score, align_face(image, det.landmarks), self.quality_cfg
        )

    def embed(self, image: ImageArray, det: Detection) -> npt.NDArray[np.float32]:
        """Unit float32 embedding (``embedder.dim`` long) of the face ``det`` in ``image``."""
        face = self.embedder.crop(image, det.landmarks)
        emb: npt.NDArray[np.float32] = self.embedder.embed([face])[0]
        return emb

    def central_face(self, image: ImageArray) -> Detection | None:
        """The detected face whose box centre is nearest the image centre."""
        faces = self.detect(image)
        if not faces:
            return None
        cy, cx = image.shape[0] / 2, image.shape[1] / 2
        return min(faces, key=lambda d: (d.centre[0] - cx) ** 2 + (d.centre[1] - cy) ** 2)

    def embed_central(self, image: ImageArray) -> npt.NDArray[np.float32] | None:
        """Embedding of the face nearest the image centre; None if there is no face."""
        det = self.central_face(image)
        return None if det is None else self.embed(image, det)


def _check_image(image: ImageArray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"image must be an H×W×3 BGR array, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"image too small: {image.shape[1]}×{image.shape[0]}")
