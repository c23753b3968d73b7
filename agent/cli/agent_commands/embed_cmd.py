"""lfr-agent embed --list FILES.txt --out EMB.npy"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from agent.cli.common import add_config_arg, config_path
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, PathsSection, load_config
from agent.errors import UsageError
from agent.vision.model_store import PinnedModel, resolve_configured_models, resolve_models
from agent.vision.still_photo import StillPhotoAnalyser


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "embed",
        help="embed the face nearest the centre of each listed photo into an N×D .npy",
        description=(
            "Reads newline-separated image paths (blank lines ignored; relative paths are "
            "relative to the current folder) and writes an N×D float32 array in the same "
            "order (D: the embedder's output size, 128 for the default SFace), using the live "
            "pipeline's detector, alignment and embedder. A row is NaN "
            "where no face is found or the image is unreadable (warned on stderr)."
        ),
    )
    p.add_argument(
        "--list",
        dest="list_file",
        metavar="FILES.txt",
        type=Path,
        required=True,
        help="file of image paths",
    )
    p.add_argument("--out", metavar="EMB.npy", type=Path, required=True, help="output .npy file")
    p.add_argument(
        "--models-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="models folder (default: the config's paths.models_dir)",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="onnxruntime threads per model (0 = all cores)"
    )
    add_config_arg(p)
    p.set_defaults(handler=cmd_embed)


def _config_or_none(args: argparse.Namespace) -> AgentConfig | None:
    path = config_path(args)
    if args.config is None and path == DEFAULT_CONFIG_PATH and not path.exists():
        return None
    return load_config(path)


def _models(args: argparse.Namespace, cfg: AgentConfig | None) -> dict[str, PinnedModel]:
    if args.models_dir is not None:
        return resolve_models(Path(args.models_dir))
    if cfg is None:
        return resolve_models(PathsSection().models_dir)
    return resolve_configured_models(cfg)


def read_list(list_file: Path) -> list[Path]:
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"embed: cannot read list {list_file}: {exc.__class__.__name__}") from exc
    return [Path(line.strip()) for line in text.splitlines() if line.strip()]


def cmd_embed(args: argparse.Namespace) -> int:
    if args.threads < 0:
        raise UsageError(f"embed: --threads must be 0 or more, got {args.threads}")
    paths = read_list(args.list_file)
    out: Path = args.out
    if not out.parent.is_dir():
        raise UsageError(f"embed: output folder {out.parent} does not exist")
    cfg = _config_or_none(args)
    models = _models(args, cfg)  # ModelError (exit 1) when a model fails verification
    analyser = StillPhotoAnalyser(
        models,
        cfg.detector if cfg else None,
        cfg.quality if cfg else None,
        threads=args.threads,
        flip=cfg.matching.flip_augment if cfg else False,
    )
    result = np.full((len(paths), analyser.embedder.dim), np.nan, dtype=np.float32)
    found = 0
    for i, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None:
            why = "not a readable image" if path.exists() else "no such file"
            print(f"lfr-agent embed: warning: {path}: {why}; row {i} is NaN", file=sys.stderr)
            continue
        try:
            emb = analyser.embed_central(image)
        except ValueError as exc:
            print(f"lfr-agent embed: warning: {path}: {exc}; row {i} is NaN", file=sys.stderr)
            continue
        if emb is None:
            print(
                f"lfr-agent embed: warning: {path}: no face found; row {i} is NaN", file=sys.stderr
            )
            continue
        result[i] = emb
        found += 1
    try:
        with out.open("wb") as f:
            np.save(f, result)
    except OSError as exc:
        raise UsageError(f"embed: cannot write {out}: {exc.strerror or exc}") from exc
    print(
        f"{out}: {len(paths)} rows, {found} with a face, {len(paths) - found} NaN", file=sys.stderr
    )
    return 0
