"""lfr-agent eval openset --data DIR [--score cosine|snorm|both] [--crowd DIR] [--groups CSV] …;
eval plates (``eval_plates_cmd``)."""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.cli.agent_commands import eval_plates_cmd
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
    IMAGE_SUFFIXES,
    ExtraFaces,
    LabelledPhoto,
    OpenSetResult,
    embed_photos,
    evaluate_openset,
    list_labelled_photos,
    read_groups,
)
from agent.evaluation.track_fusion import compare_fusion
from agent.matching.score_normalisation import CohortTooSmall
from agent.vision.face_detector import Detection
from agent.vision.model_store import PinnedModel, resolve_models
from agent.vision.still_photo import StillPhotoAnalyser

# Published cosine threshold of SFace (OpenCV Zoo) and the config's default floor:
# reported for orientation only, never tuned to the evaluated set.
DEFAULT_REPORT_THRESHOLDS = (0.363, 0.40)


PRODUCT_PATH = "product (lfr-agent embed)"
SCORE_CHOICES = {"both": ("cosine", "snorm"), "cosine": ("cosine",), "snorm": ("snorm",)}
DEFAULT_FILLERS = 64
DEFAULT_BOOTSTRAP = 1000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("eval", help="accuracy evaluation on labelled photo sets")
    esub = p.add_subparsers(dest="eval_command", metavar="KIND", required=True)
    o = esub.add_parser(
        "openset",
        help="open-set watchlist identification (TPIR/FPIR, DET curve) on <identity>/<image> photos",
        description=(
            "Splits the identities at random (seeded, repeated) into watchlist and non-mated "
            "people, enrols one photo per watchlist identity, probes with every other photo and "
            "reports, per score kind (cosine, S-norm against the watchlist), TPIR at fixed FPIR "
            "with the threshold it takes, rank-1 and bootstrap 95%% intervals over identities, "
            "and a DET curve. Decisions are the camera's: its ranking, score kind, top k and "
            "cosine floor. --crowd adds faces of other people (group photos): some join every "
            "watchlist as entries never probed, the rest are non-mated probes; S-norm needs "
            "them, as a watchlist of a few identities is too small to normalise against. "
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
        "--score",
        choices=tuple(SCORE_CHOICES),
        default="both",
        help="score kind(s) to evaluate (default both)",
    )
    o.add_argument(
        "--crowd",
        type=Path,
        default=None,
        metavar="DIR",
        help="photos of people not in --data (every face passing the quality gate is used)",
    )
    o.add_argument(
        "--crowd-exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out --crowd files whose name matches (e.g. photos showing people of --data)",
    )
    o.add_argument(
        "--fillers",
        type=int,
        default=DEFAULT_FILLERS,
        help="crowd faces put on every watchlist, whole photos at a time (default %(default)s)",
    )
    o.add_argument(
        "--fpir",
        action="append",
        default=None,
        metavar="RATE",
        help="FPIR target (repeatable; default 0.1, 0.05, 0.01, 0.001 and 1/6000, each "
        "reported where the non-mated probes of a split number at least 1/target)",
    )
    o.add_argument(
        "--bootstrap",
        type=int,
        default=DEFAULT_BOOTSTRAP,
        help="bootstrap replicates over identities for the 95%% intervals (0: none; "
        "default %(default)s)",
    )
    o.add_argument(
        "--groups",
        type=Path,
        default=None,
        metavar="CSV",
        help="identity,group rows: per-group TPIR and FPIR at the calibrated threshold",
    )
    o.add_argument(
        "--group-fpir",
        default=None,
        metavar="RATE",
        help="FPIR target of the threshold for --groups (default: the lowest target reported)",
    )
    o.add_argument(
        "--floor",
        type=float,
        default=None,
        help="no decision below this cosine (default: the config's matching.threshold_floor; "
        "-1: none)",
    )
    o.add_argument(
        "--threshold",
        type=float,
        action="append",
        default=None,
        help="cosine threshold to report TPIR/FPIR at (repeatable; default 0.363 and 0.40)",
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
    eval_plates_cmd.register(esub)


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
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _rate(text: str, what: str) -> float:
    raw = text.strip()
    try:
        if "/" in raw:
            num, _, den = raw.partition("/")
            value = float(num) / float(den)
        else:
            value = float(raw)
    except (ValueError, ZeroDivisionError) as exc:
        raise UsageError(f"eval: {what} {text!r} is not a rate like 1/6000 or 0.01") from exc
    if not 0 < value <= 1:
        raise UsageError(f"eval: {what} must be above 0 and at most 1, got {text!r}")
    return value


def _check_args(args: argparse.Namespace) -> None:
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
    if args.fillers < 0:
        raise UsageError(f"eval: --fillers must be 0 or more, got {args.fillers}")
    if args.bootstrap < 0 or args.bootstrap > 100000:
        raise UsageError(f"eval: --bootstrap must be 0–100000, got {args.bootstrap}")
    if args.floor is not None and not (args.floor == -1 or 0 <= args.floor <= 1):
        raise UsageError(f"eval: --floor must be a cosine in 0–1 or -1 (none), got {args.floor}")
    if args.crowd is not None and not args.crowd.is_dir():
        raise UsageError(f"eval: --crowd {args.crowd} is not a folder")


class _CrowdFaces:
    """The faces of --crowd photos passing the quality gate, detected once for every path."""

    def __init__(self, folder: Path, exclude: list[str], analyser: StillPhotoAnalyser) -> None:
        files = sorted(
            f
            for f in folder.iterdir()
            if f.is_file()
            and f.suffix.lower() in IMAGE_SUFFIXES
            and not any(fnmatch.fnmatch(f.name, g) for g in exclude)
        )
        self.photos: list[tuple[np.ndarray, list[Detection]]] = []
        self.excluded = sum(
            1 for f in folder.iterdir() if any(fnmatch.fnmatch(f.name, g) for g in exclude)
        )
        for f in files:
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is None:
                raise UsageError(f"eval: {f}: not a readable image")
            try:
                faces = analyser.detect(image)
            except ValueError:
                continue
            kept = [d for d in faces if analyser.assess(image, d).passes]
            if kept:
                self.photos.append((image, kept))

    def embed(
        self, embed_face: Callable[[np.ndarray, Detection], np.ndarray], dim: int
    ) -> ExtraFaces:
        rows: list[np.ndarray] = []
        photo: list[int] = []
        for k, (image, faces) in enumerate(self.photos):
            for det in faces:
                rows.append(embed_face(image, det))
                photo.append(k)
        emb = np.array(rows, np.float32) if rows else np.zeros((0, dim), np.float32)
        return ExtraFaces(emb, np.array(photo, np.intp))


def _reference_face_row(det: Detection) -> np.ndarray:
    """A detection as OpenCV's FaceDetectorYN row (box, 5 landmarks, score)."""
    return np.concatenate([det.box, det.landmarks.reshape(-1), [det.score]]).astype(np.float32)


def cmd_openset(args: argparse.Namespace) -> int:
    _check_args(args)
    thresholds = tuple(args.threshold) if args.threshold else DEFAULT_REPORT_THRESHOLDS
    for t in thresholds:
        if not -1 <= t <= 1:
            raise UsageError(f"eval: --threshold must be a cosine score in -1..1, got {t}")
    targets = tuple(_rate(t, "--fpir") for t in args.fpir) if args.fpir else DEFAULT_FPIR_TARGETS
    group_fpir = _rate(args.group_fpir, "--group-fpir") if args.group_fpir else None
    photos = list_labelled_photos(args.data)
    groups = read_groups(args.groups) if args.groups is not None else None
    cfg = config_or_none(args)
    models = models_for(args, cfg)
    matching = cfg.matching if cfg else MatchingSection()
    floor = matching.threshold_floor if args.floor is None else args.floor
    floor_value = -np.inf if floor == -1 else floor
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
        flip=matching.flip_augment,
    )
    crowd = _CrowdFaces(args.crowd, args.crowd_exclude, analyser) if args.crowd else None

    def quality_gated(image: np.ndarray) -> np.ndarray | None:
        det = analyser.central_face(image)
        if det is None or not analyser.assess(image, det).passes:
            return None
        return analyser.embed(image, det)

    # Per path: how a labelled photo is embedded, and how a crowd face is.
    paths: dict[str, tuple[Any, Callable[[np.ndarray, Detection], np.ndarray]]] = {
        PRODUCT_PATH: (analyser.embed_central, analyser.embed),
        "product + quality gate": (quality_gated, analyser.embed),
    }
    if not analyser.embedder.flip:
        flipped = StillPhotoAnalyser(
            models, cfg.detector if cfg else None, cfg.quality if cfg else None, flip=True
        )
        paths["product + flip augmentation"] = (flipped.embed_central, flipped.embed)
    if not args.no_reference and models["embedder"].name == "sface-2021dec":
        from agent.bench.naive_pipeline import OpenCvFaceReference

        reference = OpenCvFaceReference(models)
        paths["plain reference (OpenCV runner)"] = (
            reference.embed_central,
            lambda image, det: reference.embed(image, _reference_face_row(det)),
        )

    identities = [p.identity for p in photos]
    kinds = SCORE_CHOICES[args.score]
    results: dict[str, dict[str, OpenSetResult]] = {}
    timings: dict[str, float] = {}
    product_crowd: ExtraFaces | None = None
    for label, (embed, embed_face) in paths.items():
        t0 = time.perf_counter()
        try:
            emb = embed_photos(photos, embed, analyser.embedder.dim)
        except ValueError as exc:  # an image the analyser refuses (e.g. a few pixels wide)
            raise UsageError(f"eval: {exc}") from exc
        extra = crowd.embed(embed_face, analyser.embedder.dim) if crowd else None
        if label == PRODUCT_PATH:
            product_crowd = extra
        timings[label] = time.perf_counter() - t0
        results[label] = {
            kind: evaluate_openset(
                identities,
                emb,
                seed=args.seed,
                splits=args.splits,
                watchlist_fraction=args.watchlist_fraction,
                report_thresholds=thresholds if kind == "cosine" else (),
                fpir_targets=targets,
                score=kind,
                floor=floor_value,
                top_k=matching.top_k,
                extra=extra,
                fillers=args.fillers,
                bootstrap=args.bootstrap,
                groups=groups,
                group_fpir=group_fpir,
            )
            for kind in kinds
        }
        del emb, extra  # embeddings of the evaluated photos are never written out

    _print_report(args.data, results, timings, floor_value, crowd)
    fusion: dict[str, Any] = {}
    if args.track_shots:
        emb, ranks = embed_with_ranks(photos, analyser)
        # Crowd faces only fill the watchlist here: tracks are of labelled identities.
        fillers = product_crowd.embeddings if product_crowd is not None else None
        for kind in kinds:
            try:
                fusion[kind] = compare_fusion(
                    identities,
                    emb,
                    ranks,
                    shots=args.track_shots,
                    seed=args.seed,
                    splits=args.splits,
                    watchlist_fraction=args.watchlist_fraction,
                    top_k=matching.top_k,
                    fpir_targets=(0.1, 0.05, 0.01),
                    score=kind,
                    fillers=fillers,
                )
            except CohortTooSmall as exc:
                fusion[kind] = {"score": kind, "unavailable": str(exc)}
            _print_fusion(fusion[kind])
        del emb, fillers, product_crowd
    summary: dict[str, Any] = {
        "data": str(args.data),
        "crowd": str(args.crowd) if args.crowd else None,
        "crowd_faces": sum(len(f) for _, f in crowd.photos) if crowd else 0,
        "method": "open-set identification, one enrolment photo per watchlist identity, "
        "averaged over seeded random splits (NPL LFR evaluation style); decisions as the "
        "camera makes them (score kind, top k, cosine floor); 95% intervals: percentile "
        "bootstrap over identities (crowd photos as clusters)",
        "paths": {
            label: {
                **{k: r.summary for k, r in by_kind.items()},
                "embed_seconds": round(timings[label], 2),
            }
            for label, by_kind in results.items()
        },
    }
    if fusion:
        summary["shot_fusion"] = fusion
    summary_path, det_path = out / "summary.json", out / "det.png"
    try:
        summary_path.write_text(json.dumps(_json_safe(summary), indent=1) + "\n")
    except OSError as exc:
        raise LfrError(f"eval: cannot write {summary_path}: {exc.strerror}") from exc
    save_det_png(
        det_path,
        {
            f"{_short(label)} {kind}": (r.fpir, r.fnir)
            for label, by_kind in results.items()
            for kind, r in by_kind.items()
            if "unavailable" not in r.summary
        },
        f"DET, {args.data.name}: {len(photos)} photos, {args.splits} splits",
    )
    print(f"summary  {summary_path}\nDET      {det_path}")
    return 0


def _short(label: str) -> str:
    return {
        "product (lfr-agent embed)": "product",
        "product + quality gate": "quality gate",
        "product + flip augmentation": "flip",
        "plain reference (OpenCV runner)": "reference",
    }.get(label, label)


def _ci(ci: Any) -> str:
    if not ci or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in ci):
        return ""
    return f" ({_fmt(ci[0])}–{_fmt(ci[1])})"


def _print_report(
    data: Path,
    results: dict[str, dict[str, OpenSetResult]],
    timings: dict[str, float],
    floor: float,
    crowd: _CrowdFaces | None,
) -> None:
    done = [r.summary for by in results.values() for r in by.values()]
    first = next((d for d in done if "unavailable" not in d), None)
    if first is not None:
        extra = ""
        if crowd is not None:
            extra = (
                f"; crowd: {first['crowd_faces']} faces from {len(crowd.photos)} photos "
                f"({crowd.excluded} files left out), watchlist ≈ {first['watchlist_entries_mean']}"
                " entries with the crowd fillers"
            )
        print(
            f"{data}: {first['photos']} photos of {first['identities']} identities; "
            f"{first['splits']} splits, watchlist ≈ {first['watchlist_size_mean']} identities, "
            f"≈ {first['mated_probes_per_split']} mated / {first['nonmated_probes_per_split']} "
            f"non-mated probes per split{extra}"
        )
        floor_text = "none" if not math.isfinite(floor) else f"{floor:g}"
        print(
            f"decisions as the camera's: cosine floor {floor_text}; 95% intervals over "
            f"identities ({first.get('bootstrap', {}).get('replicates', 0)} bootstrap replicates)"
        )
    for label, by_kind in results.items():
        for kind, r in by_kind.items():
            s = r.summary
            print(f"\n{label} · {kind}  ({timings[label]:.1f} s)")
            if "unavailable" in s:
                print(f"  n/a: {s['unavailable']}")
                continue
            print(
                f"  rank-1 {_fmt(s['rank1'])}{_ci(s.get('rank1_ci95'))}  EER {_fmt(s['eer'])}  "
                f"d′ {_fmt(s['d_prime'])}  "
                f"(no face in {s['no_face_photos']} photos)"
            )
            for target, v in s["tpir_at_fpir"].items():
                target = _rate_label(float(target))
                if "unsupported" in v:
                    print(f"  FPIR {target:>6}: n/a ({v['unsupported']})")
                    continue
                few = "  (< 3/target non-mated probes: the threshold rests on 1–2 faces)"
                print(
                    f"  FPIR {target:>6}: TPIR {_fmt(v['tpir'])}{_ci(v.get('tpir_ci95'))} "
                    f"at threshold {_fmt(v['threshold_mean'])}{_ci(v.get('threshold_ci95'))}"
                    + (few if v["few_nonmated"] else "")
                )
            print(
                f"  top-1 score: mated median {_fmt(s['mated_top1_score_median'])}, "
                f"non-mated max {_fmt(s['nonmated_top1_score_max'])} (means over splits)"
            )
            if s["at_threshold"]:
                print(
                    "  "
                    + "  ".join(
                        f"T={k}: TPIR {_fmt(v['tpir'])} FPIR {_fmt(v['fpir'])}"
                        for k, v in s["at_threshold"].items()
                    )
                )
            if "groups" in s:
                _print_groups(s["groups"])


def _print_groups(g: dict[str, Any]) -> None:
    print(f"  groups at the threshold for FPIR {g['target_fpir']:g} (pooled over splits):")
    for name, e in g["groups"].items():
        small = "  too small to conclude anything" if e["too_small"] else ""
        print(
            f"    {name[:30]:30} {e['identities']:3} identities  TPIR {_fmt(e['tpir'])}"
            f"{_ci(e.get('tpir_ci95'))}  FPIR {_fmt(e['fpir'])}{_ci(e.get('fpir_ci95'))}{small}"
        )
    print(
        f"    max/min ratio between groups large enough to count: TPIR "
        f"{_fmt(g['tpir_max_min_ratio'])}, FPIR {_fmt(g['fpir_max_min_ratio'])}"
    )


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
    if "unavailable" in fig:
        print(f"\nshot fusion · {fig['score']}: n/a: {fig['unavailable']}")
        return
    print(
        f"\nshot fusion · {fig['score']} on tracks of {fig['shots_per_track']} photos (product "
        f"path, weights: quality rank; ≈ {fig['mated_tracks_per_split']} mated / "
        f"{fig['nonmated_tracks_per_split']} non-mated tracks per split, {fig['splits']} splits)"
    )
    for method, m in fig["methods"].items():
        at_fpir = "  ".join(f"TPIR@FPIR{k}={_fmt(v)}" for k, v in m["tpir_at_fpir"].items())
        print(
            f"  {method:14} d′ {_fmt(m['d_prime'])}  rank-1 {_fmt(m['rank1'])}  {at_fpir}  "
            f"lowest mated {_fmt(m['mated_score_min'])}, "
            f"highest non-mated {_fmt(m['nonmated_score_max'])}"
        )


def _rate_label(rate: float) -> str:
    inverse = 1 / rate
    if rate < 0.01 and abs(inverse - round(inverse)) < 1e-4 * inverse:
        return f"1/{round(inverse)}"
    return f"{rate:g}"


def _fmt(v: float) -> str:
    return "n/a" if isinstance(v, float) and math.isnan(v) else f"{v:.3f}"
