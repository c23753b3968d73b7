"""Compare face embeddings computed on aarch64 with the same computed on this host.

Both sides ran ``lfr-agent embed`` (live detector, alignment, embedder) on the
same photos with the same config.  PASS needs every row present on both sides
and cosine similarity >= --min-cosine for each, and the converted models on
both sides to carry the same SHA-256 (the conversion is deterministic).

Usage: python compare_embeddings.py --arm64 A.npy --host H.npy \\
           --arm64-manifest A/manifest.json --host-manifest H/manifest.json [--min-cosine 0.99]
Prints one line per photo and a final ``arm64-smoke: PASS`` / ``FAIL`` line;
exit status 0 on PASS, 1 on FAIL, 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def model_hashes(manifest: Path) -> dict[str, str]:
    models = json.loads(manifest.read_text(encoding="utf-8"))["models"]
    return {str(role): str(entry["sha256"]) for role, entry in models.items()}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arm64", type=Path, required=True)
    ap.add_argument("--host", type=Path, required=True)
    ap.add_argument("--arm64-manifest", type=Path, required=True)
    ap.add_argument("--host-manifest", type=Path, required=True)
    ap.add_argument("--min-cosine", type=float, default=0.99)
    ap.add_argument("--names", nargs="*", default=None, help="a label per row")
    args = ap.parse_args(argv)
    try:
        arm = np.load(args.arm64)
        host = np.load(args.host)
        arm_models = model_hashes(args.arm64_manifest)
        host_models = model_hashes(args.host_manifest)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"arm64-smoke: FAIL cannot read inputs: {exc}", file=sys.stderr)
        return 2

    problems: list[str] = []
    # The host's models are installed for the face comparison only; the device also
    # installs the plate models, which this comparison does not use.
    arm_faces = {role: arm_models.get(role, "missing") for role in host_models}
    if not host_models or arm_faces != host_models:
        problems.append(f"converted models differ: arm64 {arm_faces} host {host_models}")
    if arm.shape != host.shape or arm.ndim != 2 or arm.shape[0] == 0:
        problems.append(f"shapes differ or empty: arm64 {arm.shape} host {host.shape}")
        worst = float("nan")
    else:
        names = args.names or [f"row {i}" for i in range(arm.shape[0])]
        cosines = []
        for name, a, h in zip(names, arm, host, strict=False):
            if np.isnan(a).any() or np.isnan(h).any():
                problems.append(f"{name}: no face on {'arm64' if np.isnan(a).any() else 'host'}")
                cosines.append(float("nan"))
                continue
            cos = float(np.dot(a, h) / (np.linalg.norm(a) * np.linalg.norm(h)))
            cosines.append(cos)
            diff = float(np.abs(a - h).max())
            print(
                f"   {name}: cosine(arm64, host) = {cos:.6f}  (1 - cos = {1 - cos:.1e}, max |Δ| = {diff:.1e})"
            )
            if cos < args.min_cosine:
                problems.append(f"{name}: cosine {cos:.4f} < {args.min_cosine}")
        worst = min((c for c in cosines if not np.isnan(c)), default=float("nan"))
    if problems:
        for p in problems:
            print(f"   ✗ {p}")
        print(f"arm64-smoke: FAIL ({len(problems)} problem(s); lowest cosine {worst:.4f})")
        return 1
    print(
        f"arm64-smoke: PASS {arm.shape[0]} face(s) embedded on aarch64, lowest cosine "
        f"{worst:.6f} >= {args.min_cosine}; face models identical ({len(host_models)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
