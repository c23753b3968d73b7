"""lfr-agent eval plates --data DIR [--threshold T …] [--hotlist-size N] [--models-dir DIR]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.cli.common import add_config_arg, config_path
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, PathsSection, load_config
from agent.durable_files import write_atomic
from agent.errors import UsageError
from agent.evaluation.plate_eval import (
    DEFAULT_HOTLIST_SIZE,
    DEFAULT_THRESHOLDS,
    PlateEvalResult,
    evaluate_plates,
    list_labelled_images,
)
from agent.plates.still_plates import StillPlateReader
from agent.vision.model_store import (
    PinnedModel,
    configured_overrides,
    resolve_configured_plate_models,
    resolve_plate_models,
)


def register(esub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = esub.add_parser(
        "plates",
        help="number-plate reading on labelled images (exact plates, characters, false hits)",
        description=(
            "Reads every image of DIR that has a .txt label beside it (the plate as written; "
            "empty: no plate) with the camera's plate stages, one read per plate candidate, "
            "and prints exact-plate accuracy, character accuracy and, against a synthetic "
            "hotlist (every other labelled plate, a one-character neighbour of each labelled "
            "plate, random plates; hashed as on a camera), hits and false hits per 1,000 "
            "reads at each threshold. Thresholds are reported, never tuned here."
        ),
    )
    p.add_argument("--data", type=Path, required=True, help="folder of IMAGE + IMAGE.txt")
    p.add_argument(
        "--threshold",
        type=float,
        action="append",
        default=None,
        help="read-confidence threshold to report hits at (repeatable; default 0.5, 0.7, 0.9)",
    )
    p.add_argument(
        "--hotlist-size",
        type=int,
        default=DEFAULT_HOTLIST_SIZE,
        help="plates in the synthetic hotlist (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic hotlist")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="models folder (default: the config's paths.models_dir)",
    )
    add_config_arg(p)
    p.set_defaults(handler=cmd_plates)


def _models(args: argparse.Namespace, cfg: AgentConfig | None) -> dict[str, PinnedModel]:
    if args.models_dir is not None:
        return resolve_plate_models(Path(args.models_dir))
    if cfg is None:
        return resolve_plate_models(PathsSection().models_dir)
    if configured_overrides(cfg.models):
        return resolve_configured_plate_models(cfg)
    return resolve_plate_models(cfg.paths.models_dir)


def render(result: PlateEvalResult) -> list[str]:
    lines = [
        f"images {result.images}, labelled plates {result.plates}, reads {result.reads} "
        f"({result.reads_not_labelled} not a labelled plate), {result.ms_per_image:.1f} ms per image",
        f"exact-plate accuracy  {result.exact_accuracy:.3f}  ({result.exact} of {result.plates})",
        f"character accuracy    {result.char_accuracy:.3f}",
    ]
    for fmt, (exact, n) in result.by_format.items():
        lines.append(f"  {fmt:9} {exact}/{n} exact")
    lines.append(f"hotlist of {result.hotlist_size} plates (keyed hashes), single-frame reads:")
    lines.append("  threshold  reads≥thr  hits/listed  hit rate  false hits  per 1,000 reads")
    for t in result.thresholds:
        lines.append(
            f"  {t.threshold:9.2f}  {t.reads_at_or_above:9d}  {t.true_hits:5d}/{t.listed:<5d}"
            f"  {t.hit_rate:8.3f}  {t.false_hits:10d}  {t.false_hits_per_1000_reads:15.2f}"
        )
    return lines


def cmd_plates(args: argparse.Namespace) -> int:
    thresholds = tuple(args.threshold) if args.threshold else DEFAULT_THRESHOLDS
    if any(not 0.0 <= t <= 1.0 for t in thresholds):
        raise UsageError("eval plates: --threshold must be 0–1")
    if not 0 < args.hotlist_size <= 1_000_000:
        raise UsageError("eval plates: --hotlist-size must be 1–1,000,000")
    path = config_path(args)
    given = args.config is not None or path != DEFAULT_CONFIG_PATH or path.exists()
    cfg = load_config(path) if given else None
    images = list_labelled_images(args.data)
    models = _models(args, cfg)
    plates = cfg.plates if cfg is not None else None
    reader = StillPlateReader(
        models,
        threads=args.threads,
        detect_long_side=plates.detect_long_side if plates else 640,
        detect_threshold=plates.detect_threshold if plates else 0.3,
        min_text_height_px=plates.min_text_height_px if plates else 10.0,
    )
    result = evaluate_plates(
        images, reader, thresholds=thresholds, hotlist_size=args.hotlist_size, seed=args.seed
    )
    for line in render(result):
        print(line)
    if args.json is not None:
        body: dict[str, Any] = result.as_dict()
        write_atomic(args.json, (json.dumps(body, indent=1) + "\n").encode(), 0o644)
        print(f"figures written to {args.json}")
    return 0
