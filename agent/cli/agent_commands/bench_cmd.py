"""lfr-agent bench [--json OUT] [--models-dir DIR] [--quick]"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from agent.cli.agent_commands.eval_cmd import config_or_none
from agent.cli.common import add_config_arg
from agent.config import AgentConfig, DeviceSection, PathsSection
from agent.errors import LfrError, UsageError


def _default_data_dir() -> Path:
    env = os.environ.get("LFR_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4] / "shared" / "data"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = _default_data_dir()
    p = sub.add_parser(
        "bench",
        help="speed and memory of the face pipeline against its targets (prints figures)",
        description=(
            "Generates a 1280x720 scene of 4 watchlist people walking, then measures per-stage "
            "latency, sustained fps (1 thread and all cores), time to a match decision, the "
            "same clip through a naive per-frame OpenCV pipeline, gallery search time at 1k/10k/"
            "100k entries and peak RSS with 10k entries; with the plate models installed, "
            "plates read per second with 1 and 2 synthetic vehicles and the face pipeline's "
            "fps with the plate pipeline running beside it. Figures are printed next to the "
            "targets, never asserted."
        ),
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="models folder (default: the config's paths.models_dir)",
    )
    p.add_argument("--quick", action="store_true", help="short run (CI smoke test)")
    p.add_argument(
        "--faces",
        type=Path,
        default=data / "faces",
        help="<identity>/<image> photos for the watchlist and the scenes (default: %(default)s)",
    )
    p.add_argument(
        "--backgrounds",
        type=Path,
        default=data / "scenes" / "no_faces",
        help="background plates for the scenes (default: %(default)s)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="match threshold (default: the config's matching.threshold_floor)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes")
    add_config_arg(p)
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from agent.bench.bench_run import format_report, run_bench

    loaded = config_or_none(args)
    cfg = loaded if loaded is not None else AgentConfig(device=DeviceSection(id="bench"))
    if args.threshold is not None and not cfg.matching.threshold_floor <= args.threshold <= 1:
        raise UsageError(
            f"bench: --threshold must be within {cfg.matching.threshold_floor}..1 "
            f"(matching.threshold_floor), got {args.threshold}"
        )
    models_dir = args.models_dir or (cfg.paths.models_dir if loaded else PathsSection().models_dir)
    if args.json is not None and not args.json.parent.is_dir():
        raise UsageError(f"bench: folder of --json {args.json.parent} does not exist")

    def say(line: str) -> None:
        print(f"… {line}", file=sys.stderr, flush=True)

    figures = run_bench(
        cfg,
        Path(models_dir),
        args.faces,
        args.backgrounds,
        quick=args.quick,
        threshold=args.threshold,
        seed=args.seed,
        say=say,
    )
    print(format_report(figures))
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(_json_safe(figures), indent=1) + "\n")
        except OSError as exc:
            raise LfrError(f"bench: cannot write {args.json}: {exc.strerror}") from exc
        print(f"figures written to {args.json}")
    return 0


def _json_safe(value: object) -> object:
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
