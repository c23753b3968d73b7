"""lfr-agent eval openset --data DIR [--out DIR] [--seed N] [--models-dir DIR]"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.cli.common import add_config_arg, config_path
from agent.config import (
    DEFAULT_CONFIG_PATH,
    AgentConfig,
    MatchingSection,
    PathsSection,
    load_config,
)
from agent.errors import LfrError, UsageError
from agent.evaluation.det_plot import save_det_png
from agent.evaluation.openset import (
    DEFAULT_FPIR_TARGETS,
    LabelledPhoto,
    OpenSetResult,
    embed_photos,
    evaluate_openset,
    list_labelled_photos,
)
from agent.evaluation.track_fusion import compare_fusion
from agent.vision.model_store import PinnedModel, resolve_models
from agent.vision.still_photo import StillPhotoAnalyser

# Published cosine threshold of SFace (OpenCV Zoo) and the config's default floor:
# reported for orientation only, never tuned to the evaluated set.
DEFAULT_REPORT_THRESHOLDS = (0.363, 0.40)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("eval", help="accuracy evaluation on labelled photo sets")
    esub = p.add_subparsers(dest="eval_command", metavar="KIND", required=True)
    o = esub.add_parser(
        "openset",
        help="open-set watchlist identification (TPIR/FPIR, DET curve) on <identity>/<image> photos",
        description=(
            "Splits the identities at random (seeded, repeated) into watchlist and non-mated "
            "people, enrols one photo per watchlist identity, probes with every other photo and "
            "reports TPIR/FPIR against threshold, TPIR at fixed FPIR, rank-1 and a DET curve. "
            "Embeddings use the same path as 'lfr-agent embed'; a plain reference (OpenCV's own "
            "runner of the same model files), the quality-gated product path and flip "
            "test-time augmentation are compared. Then tracks of --track-shots photos per "
            "identity are fused by each matching.fusion method (best_of, weighted_mean) and "
            "compared by TPIR at fixed FPIR and d′. Thresholds are reported, never tuned here."
        ),
    )
    o.add_argument("--data", type=Path, required=True, help="folder of <identity>/<image> photos")
    o.add_argument(
        "--out",
        type=Path,
        default=Path("openset-eval"),
        help="output folder (default: %(default)s)",
    )
    o.add_argument("--seed", type=int, default=0, help="seed of the watchlist splits")
    o.add_argument("--splits", type=int, default=50, help="random splits averaged (default 50)")
    o.add_argument(
        "--watchlist-fraction",
        type=float,
        default=0.5,
        help="share of identities put on the watchlist in each split (default 0.5)",
    )
    o.add_argument(
        "--threshold",
        type=float,
        action="append",
        default=None,
        help="threshold to report TPIR/FPIR at (repeatable; default 0.363 and 0.40)",
    )
    o.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="models folder (default: the config's paths.models_dir)",
    )
    o.add_argument(
        "--no-reference", action="store_true", help="skip the plain OpenCV reference path"
    )
    o.add_argument(
        "--track-shots",
        type=int,
        default=3,
        help="photos per simulated track in the shot-fusion comparison "
        "(best_of vs weighted_mean; 0 skips it; default %(default)s)",
    )
    add_config_arg(o)
    o.set_defaults(handler=cmd_openset)


def config_or_none(args: argparse.Namespace) -> AgentConfig | None:
    """The device config when one is given or installed, else None (built-in defaults)."""
    path = config_path(args)
    if args.config is None and path == DEFAULT_CONFIG_PATH and not path.exists():
        return None
    return load_config(path)


def models_for(args: argparse.Namespace, cfg: AgentConfig | None) -> dict[str, PinnedModel]:
    """Pinned models from --models-dir, else the config (with its overrides), else the default."""
    if args.models_dir is not None:
        return resolve_models(Path(args.models_dir))
    if cfg is None:
        return resolve_models(PathsSection().models_dir)
    overrides = {
        role: (Path(getattr(cfg.models, role)), getattr(cfg.models, f"{role}_sha256"))
        for role in ("detector", "embedder")
        if getattr(cfg.models, role)
    }
    return resolve_models(cfg.paths.models_dir, overrides)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def cmd_openset(args: argparse.Namespace) -> int:
    if args.splits < 1:
        raise UsageError(f"eval: --splits must be at least 1, got {args.splits}")
    if not 0 < args.watchlist_fraction < 1:
        raise UsageError(
            f"eval: --watchlist-fraction must be between 0 and 1, got {args.watchlist_fraction}"
        )
    if args.track_shots == 1 or args.track_shots < 0:
        raise UsageError(
            f"eval: --track-shots must be 0 (skip) or at least 2, got {args.track_shots}"
        )
    thresholds = tuple(args.threshold) if args.threshold else DEFAULT_REPORT_THRESHOLDS
    for t in thresholds:
        if not -1 <= t <= 1:
            raise UsageError(f"eval: --threshold must be a cosine score in -1..1, got {t}")
    photos = list_labelled_photos(args.data)
    cfg = config_or_none(args)
    models = models_for(args, cfg)
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"eval: cannot create output folder {out}: {exc.strerror}") from exc
    analyser = StillPhotoAnalyser(
        models,
        cfg.detector if cfg else None,
        cfg.quality if cfg else None,
        threads=1,
        flip=cfg.matching.flip_augment if cfg else False,
    )

    def quality_gated(image: np.ndarray) -> np.ndarray | None:
        det = analyser.central_face(image)
        if det is None or not analyser.assess(image, det).passes:
            return None
        return analyser.embed(image, det)

    paths: dict[str, Any] = {"product (lfr-agent embed)": analyser.embed_central}
    paths["product + quality gate"] = quality_gated
    if not analyser.embedder.flip:
        flipped = StillPhotoAnalyser(
            models, cfg.detector if cfg else None, cfg.quality if cfg else None, flip=True
        )
        paths["product + flip augmentation"] = flipped.embed_central
    if not args.no_reference:
        from agent.bench.naive_pipeline import OpenCvFaceReference

        reference = OpenCvFaceReference(models)
        paths["plain reference (OpenCV runner)"] = reference.embed_central

    identities = [p.identity for p in photos]
    results: dict[str, OpenSetResult] = {}
    timings: dict[str, float] = {}
    for label, embed in paths.items():
        t0 = time.perf_counter()
        try:
            emb = embed_photos(photos, embed, analyser.embedder.dim)
        except ValueError as exc:  # an image the analyser refuses (e.g. a few pixels wide)
            raise UsageError(f"eval: {exc}") from exc
        timings[label] = time.perf_counter() - t0
        results[label] = evaluate_openset(
            identities,
            emb,
            seed=args.seed,
            splits=args.splits,
            watchlist_fraction=args.watchlist_fraction,
            report_thresholds=thresholds,
            fpir_targets=DEFAULT_FPIR_TARGETS,
        )
        del emb  # embeddings of the evaluated photos are never written out

    _print_report(args.data, results, timings)
    fusion = None
    if args.track_shots:
        emb, ranks = embed_with_ranks(photos, analyser)
        fusion = compare_fusion(
            identities,
            emb,
            ranks,
            shots=args.track_shots,
            seed=args.seed,
            splits=args.splits,
            watchlist_fraction=args.watchlist_fraction,
            top_k=cfg.matching.top_k if cfg else MatchingSection().top_k,
            fpir_targets=DEFAULT_FPIR_TARGETS,
        )
        del emb
        _print_fusion(fusion)
    summary = {
        "data": str(args.data),
        "method": "open-set identification, one enrolment photo per watchlist identity, "
        "averaged over seeded random splits (NPL LFR evaluation style)",
        "paths": {
            label: {**r.summary, "embed_seconds": round(timings[label], 2)}
            for label, r in results.items()
        },
    }
    if fusion is not None:
        summary["shot_fusion"] = fusion
    summary_path, det_path = out / "summary.json", out / "det.png"
    try:
        summary_path.write_text(json.dumps(_json_safe(summary), indent=1) + "\n")
    except OSError as exc:
        raise LfrError(f"eval: cannot write {summary_path}: {exc.strerror}") from exc
    save_det_png(
        det_path,
        {label: (r.fpir, r.fnir) for label, r in results.items()},
        f"DET, {args.data.name}: {len(photos)} photos, {args.splits} splits",
    )
    print(f"summary  {summary_path}\nDET      {det_path}")
    return 0


def _print_report(data: Path, results: dict[str, OpenSetResult], timings: dict[str, float]) -> None:
    first = next(iter(results.values())).summary
    print(
        f"{data}: {first['photos']} photos of {first['identities']} identities; "
        f"{first['splits']} splits, watchlist ≈ {first['watchlist_size_mean']} identities, "
        f"≈ {first['mated_probes_per_split']} mated / {first['nonmated_probes_per_split']} "
        "non-mated probes per split"
    )
    for label, r in results.items():
        s = r.summary
        at_fpir = "  ".join(f"TPIR@FPIR{k}={_fmt(v['tpir'])}" for k, v in s["tpir_at_fpir"].items())
        at_t = "  ".join(
            f"T={k}: TPIR {_fmt(v['tpir'])} FPIR {_fmt(v['fpir'])}"
            for k, v in s["at_threshold"].items()
        )
        print(f"\n{label}  ({timings[label]:.1f} s, no face in {s['no_face_photos']} photos)")
        print(f"  rank-1 {_fmt(s['rank1'])}  EER {_fmt(s['eer'])}  {at_fpir}")
        print(
            f"  top-1 score: mated median {_fmt(s['mated_top1_score_median'])}, "
            f"non-mated max {_fmt(s['nonmated_top1_score_max'])} (means over splits)"
        )
        print(f"  {at_t}")


def embed_with_ranks(
    photos: list[LabelledPhoto], analyser: StillPhotoAnalyser
) -> tuple[np.ndarray, np.ndarray]:
    """Product-path embeddings (NaN rows: no face) and each face's quality rank (its weight)."""
    emb = np.full((len(photos), analyser.embedder.dim), np.nan, dtype=np.float32)
    ranks = np.zeros(len(photos), dtype=np.float64)
    for i, photo in enumerate(photos):
        image = cv2.imread(str(photo.path), cv2.IMREAD_COLOR)
        if image is None:
            raise UsageError(f"eval: {photo.path}: not a readable image")
        try:
            det = analyser.central_face(image)
        except ValueError as exc:
            raise UsageError(f"eval: {photo.path}: {exc}") from exc
        if det is None:
            continue
        emb[i] = analyser.embed(image, det)
        ranks[i] = analyser.assess(image, det).rank
    return emb, ranks


def _print_fusion(fig: dict[str, Any]) -> None:
    print(
        f"\nshot fusion on tracks of {fig['shots_per_track']} photos (product path, weights: "
        f"quality rank; ≈ {fig['mated_tracks_per_split']} mated / "
        f"{fig['nonmated_tracks_per_split']} non-mated tracks per split, {fig['splits']} splits)"
    )
    for method, m in fig["methods"].items():
        at_fpir = "  ".join(f"TPIR@FPIR{k}={_fmt(v)}" for k, v in m["tpir_at_fpir"].items())
        print(
            f"  {method:14} d′ {_fmt(m['d_prime'])}  rank-1 {_fmt(m['rank1'])}  {at_fpir}  "
            f"lowest mated {_fmt(m['mated_score_min'])}, "
            f"highest non-mated {_fmt(m['nonmated_score_max'])}"
        )


def _fmt(v: float) -> str:
    return "n/a" if isinstance(v, float) and math.isnan(v) else f"{v:.3f}"
