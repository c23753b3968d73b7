"""Face embedding in onnxruntime: aligned faces to unit vectors.

How a face is prepared (input size, colour order, normalisation, alignment template)
and how long the vector is come from the embedder's spec (``agent.vision.embedder_spec``):
the pinned SFace takes 112×112 RGB 0–255 NCHW and gives 128 numbers; a force's own
model installed from its manifest says its own. The spec is checked against the ONNX
file when the model is opened. The pipeline's quality checks always look at the
standard 112×112 ArcFace alignment; ``crop`` gives the face as this model takes it. Several faces are embedded in one call; when the
model's batch dimension is fixed at 1 (as converted), they run one after the
other through the same session. A dynamic batch dimension was tried (it needs
only ``dim_param`` on input and output dim 0: SFace's Reshapes act on weights,
its Flatten keeps the batch) and gave identical embeddings, but no speed: per
face on the 2-core x86-64 development machine (onnxruntime CPU, 2026-12-01, a
loaded machine, best runs), 1 thread 33.2 / 34.0 / 33.5 / 33.6 ms one run per
face against 33.4 / 33.1 / 32.6 / 35.6 ms as one batch of 1 / 2 / 4 / 8, and
no consistent gain with 2 threads either. A face costs ≈ 33 ms of convolution
and a run's own overhead is well under 1 ms, so the converted model keeps its
fixed batch of 1 (and its pinned hash).

With ``flip=True`` each face is also embedded mirrored and the two vectors are
summed before normalising (test-time augmentation). It is off by default
(``matching.flip_augment``): it doubles the embedding cost, and ``lfr-agent eval
openset`` (its "product + flip augmentation" lines) shows no gain on the shared
face photos.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from agent.camera.frame_source import BgrImage
from agent.vision.embedder_spec import SFACE_SPEC, check_against_onnx
from agent.vision.face_align import ALIGNED_SIZE, align_face
from agent.vision.model_store import PinnedModel
from agent.vision.onnx_session import open_session

Embeddings = npt.NDArray[np.float32]


def l2_normalise(x: npt.NDArray[np.floating]) -> Embeddings:
    """Rows of ``x`` scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    out: Embeddings = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return out


class FaceEmbedder:
    """``embed(faces) -> N×dim`` float32, each row L2-normalised.

    ``dim`` is the model's output size (128 for SFace; a force's own embedder may differ),
    checked against its spec when the model is opened.
    """

    def __init__(self, model: PinnedModel, *, threads: int = 1, flip: bool = False) -> None:
        self.model = model
        self.flip = flip
        self.spec = model.spec or SFACE_SPEC
        self._session = open_session(model, threads)
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self._output = self._session.get_outputs()[0].name
        batch = inp.shape[0]
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else 0  # 0: any
        # A model without a manifest (the pinned SFace, or one from the config's [models]) is
        # prepared as SFace is; its output size is whatever it gives.
        self.dim = check_against_onnx(
            self._session, self.spec, f"embedder {model.path}", check_output=model.spec is not None
        )
        self._template = self.spec.template()
        self._standard_alignment = (
            self.spec.input_size == ALIGNED_SIZE
            and self.spec.alignment_template == SFACE_SPEC.alignment_template
        )
        order = [2, 1, 0] if self.spec.colour_order == "rgb" else [0, 1, 2]  # from BGR
        self._channels = np.array(order)
        self._mean = np.array(self.spec.mean, np.float32).reshape(1, 3, 1, 1)
        self._scale = (1.0 / np.array(self.spec.std, np.float32)).reshape(1, 3, 1, 1)
        self._plain = self.spec.mean == (0.0, 0.0, 0.0) and self.spec.std == (1.0, 1.0, 1.0)

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    def crop(
        self,
        image: BgrImage,
        landmarks: npt.NDArray[np.floating],
        standard: BgrImage | None = None,
    ) -> BgrImage:
        """The face as this model takes it; ``standard`` (the 112×112 ArcFace alignment the
        quality checks made) is reused when the model's alignment is that one."""
        if standard is not None and self._standard_alignment:
            return standard
        return align_face(image, landmarks, self._template, self.spec.input_size)

    def embed(self, faces: Sequence[BgrImage]) -> Embeddings:
        """Embed aligned BGR faces (``crop``); returns len(faces)×dim, unit rows."""
        if not len(faces):
            return np.zeros((0, self.dim), dtype=np.float32)
        size = self.spec.input_size
        for f in faces:
            if f.shape != (size, size, 3):
                raise ValueError(f"aligned face must be {size}×{size}×3, got {f.shape}")
        # BGR HWC -> the model's channel order, CHW, float32, normalised
        blob = np.stack(faces)[..., self._channels].transpose(0, 3, 1, 2).astype(np.float32)
        if not self._plain:
            blob = (blob - self._mean) * self._scale
        raw = self._run(blob)
        if self.flip:
            raw = raw + self._run(np.ascontiguousarray(blob[..., ::-1]))
        return l2_normalise(raw)

    def _run(self, blob: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        blob = np.ascontiguousarray(blob)
        if self.max_batch == 0 or len(blob) <= self.max_batch:
            out: npt.NDArray[np.float32] = self._session.run([self._output], {self._input: blob})[0]
            return out.reshape(len(blob), -1)
        step = self.max_batch
        parts = [
            self._session.run([self._output], {self._input: blob[i : i + step]})[0]
            for i in range(0, len(blob), step)
        ]
        return np.concatenate(parts).reshape(len(blob), -1).astype(np.float32)
