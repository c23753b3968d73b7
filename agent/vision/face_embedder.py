"""Face embedding with SFace in onnxruntime: aligned 112×112 faces to unit vectors (128-d).

SFace takes RGB 0–255 NCHW. Several faces are embedded in one call; when the
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
from agent.vision.face_align import ALIGNED_SIZE
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
    """SFace: ``embed(aligned_faces) -> N×dim`` float32, each row L2-normalised.

    ``dim`` is the model's real output size (128 for SFace; an operator's own embedder
    may differ), read from the graph or, when the graph leaves it symbolic, from one run.
    """

    def __init__(self, model: PinnedModel, *, threads: int = 1, flip: bool = False) -> None:
        self.model = model
        self.flip = flip
        self._session = open_session(model, threads)
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self._output = self._session.get_outputs()[0].name
        batch = inp.shape[0]
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else 0  # 0: any
        out_dim = self._session.get_outputs()[0].shape[-1]
        if isinstance(out_dim, int) and out_dim > 0:
            self.dim = out_dim
        else:
            probe = np.zeros((1, 3, ALIGNED_SIZE, ALIGNED_SIZE), np.float32)
            self.dim = int(self._run(probe).shape[1])

    def embed(self, faces: Sequence[BgrImage]) -> Embeddings:
        """Embed aligned 112×112 BGR faces; returns len(faces)×dim, unit rows."""
        if not len(faces):
            return np.zeros((0, self.dim), dtype=np.float32)
        for f in faces:
            if f.shape != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
                raise ValueError(f"aligned face must be 112×112×3, got {f.shape}")
        # BGR HWC -> RGB CHW, float32 0–255
        blob = np.stack(faces)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
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
