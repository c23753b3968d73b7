"""Installing a force's own licensed embedder from its model manifest (``models install --from``).

The manifest (``agent.vision.embedder_spec``) names the ONNX file, its SHA-256, its
licence and how faces are prepared for it. Installing checks the file against the
hash, opens it and checks its input shape and output size against the manifest,
copies it into the models folder and records it in that folder's ``manifest.json``
(``origin = "operator manifest"``, with the spec), in place of the pinned SFace. The
pinned detector stays. From then on every tool that resolves the models folder
(the daemon, ``embed``, ``eval``, ``bench``, the hub's ``watchlist build``) embeds with
it; watchlists name it by its model id, so a camera refuses a watchlist made with
the other model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent.durable_files import write_atomic
from agent.errors import ModelError
from agent.vision.embedder_spec import check_against_onnx, read_manifest
from agent.vision.model_store import (
    OPERATOR_ORIGIN,
    PinnedModel,
    install_models,
    storage_error,
    write_manifest,
)
from agent.vision.model_store import (
    read_manifest as read_models_manifest,
)
from agent.vision.onnx_session import open_session


def install_operator_embedder(dest: Path, manifest_path: Path) -> list[PinnedModel]:
    """Install the pinned detector and the force's embedder described by ``manifest_path``
    into ``dest``; ModelError (one line) when the manifest, the file or its hash disagree."""
    manifest = read_manifest(manifest_path)
    try:
        data = manifest.file.read_bytes()
    except OSError as exc:
        raise ModelError(
            f"models: {manifest.file} (named by {manifest_path}) cannot be read "
            f"({exc.strerror or exc.__class__.__name__})"
        ) from exc
    got = hashlib.sha256(data).hexdigest()
    if got != manifest.sha256:
        raise ModelError(
            f"models: {manifest.file} has SHA-256 {got}, the manifest says {manifest.sha256}"
        )
    staged = PinnedModel("embedder", manifest.file, got, manifest.name, manifest.spec)
    check_against_onnx(open_session(staged), manifest.spec, f"embedder {manifest.file.name}")
    pinned = [m for m in install_models(dest, keep_operator=False) if m.role != "embedder"]
    out_name = f"{manifest.name}.onnx"
    try:
        write_atomic(dest / out_name, data, 0o644)
        entries = dict(read_models_manifest(dest))
        entries["embedder"] = {
            "name": manifest.name,
            "file": out_name,
            "sha256": got,
            "origin": OPERATOR_ORIGIN,
            "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
            "licence": manifest.licence,
            "provenance": manifest.provenance,
            "spec": manifest.spec.as_dict(),
        }
        write_manifest(dest, entries)
    except OSError as exc:
        raise storage_error("install the models into", exc, dest) from exc
    return [*pinned, PinnedModel("embedder", dest / out_name, got, manifest.name, manifest.spec)]
