"""Watchlists and cohorts for the calibration tests: face-like synthetic embeddings (each
person a direction, each photo that direction plus noise), sealed by a real hub with the
hub copy, and cohorts of other people. Real keys, real bundle format, real scoring."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.hub.keys.operator_keys import HubKeyStore
from agent.matching.watchlist_bundle import WatchlistContent, build_bundle

DIM = 64
MODEL_ID = "sface-2021dec@0000000000000000"
MODEL_SHA = "00" * 32
DEVICE = "lfr-cal-01"


def people(n: int, photos: int, seed: int, noise: float = 0.55) -> tuple[np.ndarray, list[int]]:
    """``photos`` unit embeddings of each of ``n`` people, and whose each row is."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n, DIM))
    rows = np.repeat(centres, photos, axis=0) + noise * rng.standard_normal((n * photos, DIM))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32), [i for i in range(n) for _ in range(photos)]


def watchlist(n: int, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    """n subjects with one or two photos each (a subject's photos share its reference)."""
    rows, who = people(n, 2, seed)
    keep = [k for k in range(len(rows)) if k % 2 == 0 or who[k] % 3 == 0]
    refs_by_person = {p: f"w{p:012x}" for p in set(who)}
    return rows[keep], [refs_by_person[who[k]] for k in keep]


def cohort(n: int, seed: int = 2) -> np.ndarray:
    return people(n, 1, seed)[0]


def seal(hub: HubKeyStore, out: Path, n: int = 200, hub_copy: bool = True) -> Path:
    emb, refs = watchlist(n)
    now = time.time()
    content = WatchlistContent(
        "dep-cal", (DEVICE,), now, now + 3600, MODEL_ID, MODEL_SHA, refs, emb
    )
    bundle = build_bundle(
        content,
        hub.watchlist_signing_key(),
        {DEVICE: X25519PrivateKey.generate().public_key()},
        hub.alert_private_key().public_key() if hub_copy else None,
    )
    out.write_bytes(bundle.data)
    return out
