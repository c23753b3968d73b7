"""lfr-agent models install|verify"""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli.common import add_config_arg, config_path
from agent.config import DEFAULT_CONFIG_PATH, PathsSection, load_config
from agent.vision.model_store import configured_overrides, install_models, resolve_models


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="install and verify the pinned ONNX models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    inst = msub.add_parser(
        "install", help="convert the shipped models into DIR and write the manifest"
    )
    inst.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="models folder (default: the config's paths.models_dir)",
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
    for m in install_models(dest):
        print(f"{m.role:9} {m.path}  sha256 {m.sha256}")
    print(f"manifest  {dest / 'manifest.json'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    models_dir, overrides = _models_dir(args)
    for m in resolve_models(models_dir, overrides).values():
        print(f"✓ {m.role:9} {m.path}  {m.model_id}")
    return 0
