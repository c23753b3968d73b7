"""``python -m hil.rig run --rig hil/rigs/virtual.toml --out DIR [--short]``

Runs the rig's scenarios in order, writes the report (JSON, Markdown, HTML, PNG plots)
to DIR and prints the summary table. Exit code 0 when every scenario passed (checks
that could not run on this rig are listed as "not run" and do not fail it), 1 when one
failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from agent.errors import LfrError
from hil.rig.report import summary_table, write_report
from hil.rig.rig_description import RigDescription, load_rig
from hil.rig.scenarios import SCENARIOS
from hil.rig.scenarios.scenario_support import FAIL, RigDriver, ScenarioResult
from hil.stop_signals import interrupt_on_stop_signals

REPO_ROOT = Path(__file__).resolve().parents[2]


def _say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def _ordered(names: Sequence[str]) -> list[str]:
    # Privacy stops the device to see what shutdown writes, so it always comes last.
    return [n for n in names if n != "privacy"] + [n for n in names if n == "privacy"]


def run_scenarios(rig: RigDriver, names: Sequence[str]) -> list[ScenarioResult]:
    results = []
    for name in _ordered(names):
        title, run = SCENARIOS[name]
        result = ScenarioResult(name, title)
        _say(f"scenario {name} ...")
        t = time.monotonic()
        try:
            run(rig, result)
        except LfrError as exc:
            result.check("scenario completed", False, str(exc))
        except Exception as exc:  # a rig bug must not hide the other scenarios' results
            result.check("scenario completed", False, f"{type(exc).__name__}: {exc}")
            result.notes.append(traceback.format_exc(limit=3))
        result.duration_s = time.monotonic() - t
        _say(f"scenario {name}: {result.verdict.upper()} ({result.duration_s:.0f} s)")
        results.append(result)
    return results


def _make_rig(desc: RigDescription, args: argparse.Namespace) -> RigDriver:
    if desc.kind == "real":
        from hil.rig.real_rig import RealRig

        return RealRig(desc, args.out, args.models_dir, args.shared_data, say=_say)
    from hil.rig.virtual_rig import VirtualRig

    return VirtualRig(desc, args.out, args.models_dir, args.shared_data, say=_say)


def cmd_run(args: argparse.Namespace) -> int:
    desc = load_rig(args.rig)
    if args.short:
        desc = desc.shortened()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rig = _make_rig(desc, args)
    _say(f"rig {desc.name} ({desc.kind}{', short' if args.short else ''}): setting up")
    results: list[ScenarioResult] = []
    try:
        rig.setup()
        results = run_scenarios(rig, desc.scenarios)
    finally:
        rig.teardown()
    meta = {
        "rig": desc.name,
        "kind": desc.kind,
        "short": bool(args.short),
        "description": str(desc.path),
        "network": rig.network.note,
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "host": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu",
        "notes": list(getattr(rig, "notes", [])),
        **getattr(rig, "metadata", {}),  # what a rig measured about itself (clock offset)
    }
    path = write_report(args.out, meta, results)
    print()
    print(summary_table(results))
    print(f"\nreport: {path} (+ report.md, report.html, PNG plots); {meta['duration_s']} s")
    return 1 if any(r.verdict == FAIL for r in results) else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.rig", description=__doc__.split("\n\n")[1])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a rig's scenarios and write the report")
    run.add_argument("--rig", type=Path, required=True, help="rig description (TOML)")
    run.add_argument("--out", type=Path, required=True, help="folder for the report")
    run.add_argument("--short", action="store_true", help="the short (CI) form of the rig")
    run.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("LFR_MODELS_DIR", REPO_ROOT / "var" / "models")),
        help="installed pinned models (default var/models)",
    )
    run.add_argument(
        "--shared-data",
        type=Path,
        default=Path(os.environ.get("LFR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")),
        help="face photos and scene backgrounds (default ../shared/data)",
    )
    args = p.parse_args(argv)
    interrupt_on_stop_signals()
    try:
        return cmd_run(args)
    except LfrError as exc:
        print(f"hil.rig: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
