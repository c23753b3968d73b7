"""Building a deployment's watchlist at the hub: check photos, embed, sign, encrypt, write.

Every accepted photo becomes its own entry; all entries of one subject carry
the same opaque reference. Photos are not fused into one mean embedding
because reference photos differ in pose, light and age, and the best single
match against any of them is a better score than the match against their
average; sharing the reference means an alert (and the device's per-entry
cooldown) still names one subject.

Two files are written:

- ``OUT``: the sealed bundle (``agent.matching.watchlist_bundle``), safe to
  copy to a device or send over MQTT; it holds no names or photos.
- ``OUT.hub-map.json`` (mode 0600, stays at the hub): reference → subject,
  category and photo paths, plus the rejected photos with their reasons. It is
  what turns an alert's entry reference back into a person for adjudication.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.errors import CheckFailed
from agent.hub.watchlists.watchlist_enrolment import EnrolmentChecker, PhotoVerdict, ReferencePhoto
from agent.matching.watchlist_bundle import (
    SealedBundle,
    WatchlistContent,
    build_bundle,
    new_entry_ref,
)
from agent.trust.key_files import write_atomic

MAP_SUFFIX = ".hub-map.json"
Progress = Callable[[int, int], None]


class WatchlistBuildError(CheckFailed):
    """The build ran but produced no usable watchlist (nothing accepted, or --strict)."""


@dataclass(frozen=True)
class BuildResult:
    bundle: SealedBundle
    out: Path
    map_path: Path
    verdicts: list[PhotoVerdict]
    subjects: int
    created_at: float
    expires_at: float

    @property
    def accepted(self) -> list[PhotoVerdict]:
        return [v for v in self.verdicts if v.accepted]

    @property
    def rejected(self) -> list[PhotoVerdict]:
        return [v for v in self.verdicts if not v.accepted]


def map_path_for(out: Path) -> Path:
    return out.with_name(out.name + MAP_SUFFIX)


def check_photos(
    photos: Sequence[ReferencePhoto], checker: EnrolmentChecker, progress: Progress | None = None
) -> list[PhotoVerdict]:
    verdicts = []
    for i, photo in enumerate(photos):
        verdicts.append(checker.check(photo))
        if progress:
            progress(i + 1, len(photos))
    return verdicts


def build_watchlist(
    verdicts: Sequence[PhotoVerdict],
    *,
    model_id: str,
    model_sha256: str,
    deployment_id: str,
    devices: Sequence[str],
    recipients: Mapping[str, X25519PublicKey],
    signing_key: Ed25519PrivateKey,
    expires_in_s: float,
    out: Path,
    strict: bool = False,
    clock: Callable[[], float] = time.time,
    hub_key: X25519PublicKey | None = None,
) -> BuildResult:
    """Turn checked photos into a sealed bundle at ``out`` and its hub-side map. With
    ``hub_key`` (the hub alert key) the hub can open the bundle again to calibrate."""
    rejected = [v for v in verdicts if not v.accepted]
    accepted = [v for v in verdicts if v.accepted]
    if strict and rejected:
        raise WatchlistBuildError(
            f"watchlist: {len(rejected)} of {len(verdicts)} photos rejected; "
            "nothing written (--strict)"
        )
    if not accepted:
        raise WatchlistBuildError(
            f"watchlist: all {len(verdicts)} photos rejected; nothing written"
        )
    refs_by_subject: dict[str, str] = {}
    refs: list[str] = []
    for v in accepted:
        refs.append(refs_by_subject.setdefault(v.photo.subject, new_entry_ref()))
    embeddings = np.stack([v.embedding for v in accepted if v.embedding is not None])
    created = clock()
    content = WatchlistContent(
        deployment_id=deployment_id,
        devices=tuple(devices),
        created_at=created,
        expires_at=created + expires_in_s,
        model_id=model_id,
        model_sha256=model_sha256,
        refs=refs,
        embeddings=embeddings,
    )
    bundle = build_bundle(content, signing_key, recipients, hub_key)
    subjects: dict[str, dict[str, object]] = {}
    for v, ref in zip(accepted, refs, strict=True):
        entry = subjects.setdefault(
            ref, {"subject": v.photo.subject, "category": v.photo.category, "photos": []}
        )
        photos = entry["photos"]
        assert isinstance(photos, list)
        photos.append(str(v.photo.path))
    mapping = {
        "watchlist_hash": bundle.watchlist_hash,
        "deployment_id": deployment_id,
        "devices": list(devices),
        "created_at": content.created_at,
        "expires_at": content.expires_at,
        "model_id": model_id,
        "entries": len(refs),
        "hub_copy": hub_key is not None,
        "refs": subjects,
        "rejected": [
            {"subject": v.photo.subject, "photo": str(v.photo.path), "reasons": list(v.reasons)}
            for v in rejected
        ],
    }
    map_path = map_path_for(out)
    write_atomic(map_path, (json.dumps(mapping, indent=1, sort_keys=True) + "\n").encode(), 0o600)
    write_atomic(out, bundle.data, 0o600)
    return BuildResult(
        bundle, out, map_path, list(verdicts), len(subjects), content.created_at, content.expires_at
    )
