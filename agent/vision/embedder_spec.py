"""What an embedder expects and gives: the model manifest of a face embedder.

The pinned SFace takes a 112×112 RGB face, raw 0–255 values, aligned to the ArcFace
five-point template, and gives 128 numbers (``SFACE_SPEC``). A force that licenses
a stronger model describes it in a manifest (TOML) next to its ONNX file and
installs it with ``lfr-agent models install --from MANIFEST``::

    [embedder]
    name = "force-model-2027"             # becomes the model id with a hash prefix
    file = "force-model.onnx"             # relative to the manifest
    sha256 = "…64 hex…"                   # of that file
    licence = "licensed to … for LFR, 2027–2030"
    input_size = 112                      # square input, pixels
    colour_order = "rgb"                  # rgb or bgr
    mean = [0.0, 0.0, 0.0]                # per channel, in colour_order: (pixel − mean) / std
    std = [1.0, 1.0, 1.0]
    alignment_template = [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                          [41.5493, 92.3655], [70.7299, 92.2041]]   # in input pixels
    embedding_size = 128
    provenance = "…"                      # optional: where it came from

The same spec is then used by the live pipeline, ``embed``, ``eval``, ``bench`` and the
hub's watchlist builder (they all embed through ``FaceEmbedder``). ``check_against_onnx``
refuses a manifest that disagrees with its ONNX file (input shape, output size), at
install and again whenever the model is opened.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import ModelError

COLOUR_ORDERS = ("rgb", "bgr")
MANIFEST_KEYS = {
    "name",
    "file",
    "sha256",
    "licence",
    "input_size",
    "colour_order",
    "mean",
    "std",
    "alignment_template",
    "embedding_size",
    "provenance",
}
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")

ARCFACE_TEMPLATE_112 = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)


@dataclass(frozen=True)
class EmbedderSpec:
    """How a face is prepared for the embedder and what comes out."""

    input_size: int
    colour_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    alignment_template: tuple[tuple[float, float], ...]
    embedding_size: int

    def template(self) -> npt.NDArray[np.float64]:
        return np.array(self.alignment_template, dtype=np.float64)

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "colour_order": self.colour_order,
            "mean": list(self.mean),
            "std": list(self.std),
            "alignment_template": [list(p) for p in self.alignment_template],
            "embedding_size": self.embedding_size,
        }


SFACE_SPEC = EmbedderSpec(
    input_size=112,
    colour_order="rgb",
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    alignment_template=ARCFACE_TEMPLATE_112,
    embedding_size=128,
)


@dataclass(frozen=True)
class EmbedderManifest:
    """A force's embedder as its manifest describes it."""

    name: str
    file: Path  # absolute: the manifest's folder joined with its ``file``
    sha256: str
    licence: str
    provenance: str
    spec: EmbedderSpec


def _triple(value: Any, key: str, where: str) -> tuple[float, float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise ModelError(f"{where}: {key} must be 3 finite numbers (one per channel)")
    return (float(value[0]), float(value[1]), float(value[2]))


def spec_from_dict(data: dict[str, Any], where: str) -> EmbedderSpec:
    """An EmbedderSpec from manifest fields; ModelError (one line) naming the bad one."""
    size = data.get("input_size")
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 1024:
        raise ModelError(f"{where}: input_size must be an integer 16–1024, got {size!r}")
    colour = data.get("colour_order")
    if colour not in COLOUR_ORDERS:
        raise ModelError(f"{where}: colour_order must be rgb or bgr, got {colour!r}")
    mean = _triple(data.get("mean"), "mean", where)
    std = _triple(data.get("std"), "std", where)
    if any(s == 0 for s in std):
        raise ModelError(f"{where}: std must not be 0")
    tpl = data.get("alignment_template")
    if (
        not isinstance(tpl, list)
        or len(tpl) != 5
        or not all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
            and all(0 <= v <= size for v in p)
            for p in tpl
        )
    ):
        raise ModelError(
            f"{where}: alignment_template must be 5 [x, y] points inside the {size}-pixel input"
        )
    dim = data.get("embedding_size")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 2 <= dim <= 4096:
        raise ModelError(f"{where}: embedding_size must be an integer 2–4096, got {dim!r}")
    return EmbedderSpec(
        input_size=size,
        colour_order=str(colour),
        mean=mean,
        std=std,
        alignment_template=tuple((float(p[0]), float(p[1])) for p in tpl),
        embedding_size=dim,
    )


def read_manifest(path: Path) -> EmbedderManifest:
    """Parse a force's model manifest (TOML, an ``[embedder]`` table)."""
    where = f"models: manifest {path}"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{where}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{where}: cannot read ({exc.__class__.__name__})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{where}: invalid TOML ({exc})") from exc
    data = raw.get("embedder")
    if not isinstance(data, dict) or set(raw) != {"embedder"}:
        raise ModelError(f"{where}: must hold one [embedder] table and nothing else")
    unknown = sorted(set(data) - MANIFEST_KEYS)
    if unknown:
        raise ModelError(f"{where}: unknown key {unknown[0]!r}")
    missing = sorted(MANIFEST_KEYS - {"provenance"} - set(data))
    if missing:
        raise ModelError(f"{where}: {missing[0]} is required")
    name = data["name"]
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ModelError(f"{where}: name must match {_NAME_RE.pattern}, got {str(name)[:70]!r}")
    digest = data["sha256"]
    if not isinstance(digest, str) or not _HEX64_RE.fullmatch(digest.lower()):
        raise ModelError(f"{where}: sha256 must be 64 hex digits")
    file = data["file"]
    if not isinstance(file, str) or not file:
        raise ModelError(f"{where}: file must name the ONNX file")
    for key in ("licence", "provenance"):
        if not isinstance(data.get(key, ""), str):
            raise ModelError(f"{where}: {key} must be text")
    if not data["licence"].strip():
        raise ModelError(f"{where}: licence must say under what terms the model is used")
    return EmbedderManifest(
        name=name,
        file=(path.parent / file).resolve(),
        sha256=digest.lower(),
        licence=data["licence"].strip(),
        provenance=str(data.get("provenance", "")).strip(),
        spec=spec_from_dict(data, where),
    )


def check_against_onnx(
    session: Any, spec: EmbedderSpec, what: str, check_output: bool = True
) -> int:
    """Refuse an ONNX session that disagrees with ``spec``; return its embedding size.

    The input must be N×3×S×S (S = input_size); the output's last dimension (a symbolic
    one is run once to see) must be embedding_size unless ``check_output`` is False (an
    SFace-compatible model from the config's ``[models]``, whose size is its own).
    """
    inp = session.get_inputs()[0]
    shape = list(inp.shape)
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise ModelError(f"models: {what} takes input of shape {shape}, not N×3×H×W")
    for got in shape[2:]:
        if isinstance(got, int) and got != spec.input_size:
            raise ModelError(
                f"models: {what} takes {shape[2]}×{shape[3]} faces, the manifest says "
                f"input_size {spec.input_size}"
            )
    out_dim = session.get_outputs()[0].shape[-1]
    if not isinstance(out_dim, int) or out_dim <= 0:
        probe = np.zeros((1, 3, spec.input_size, spec.input_size), np.float32)
        try:
            result = session.run(None, {inp.name: probe})[0]
        except Exception as exc:  # onnxruntime raises its own types
            raise ModelError(
                f"models: {what} does not run on a {spec.input_size}×{spec.input_size} face"
            ) from exc
        out_dim = int(np.asarray(result).reshape(1, -1).shape[1])
    if check_output and out_dim != spec.embedding_size:
        raise ModelError(
            f"models: {what} gives {out_dim}-d embeddings, the manifest says "
            f"embedding_size {spec.embedding_size}"
        )
    return int(out_dim)
